"""Dot-notation paths into a source event: `body.email`, `headers.x-clay-table-id`,
`body.contacts[0].email`, `body.contacts[*].email`, `body["Full Name"]`.

A path is parsed once (when the config loads) into a `Path`. Paths made only of keys and
indexes resolve through a fast direct walk; paths with a `[*]` wildcard resolve through a
compiled jsonpath-ng expression. `Path.jsonpath` is the jsonpath-ng form of any path, which
the tests use as the reference the fast walk must agree with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jsonpath_ng import parse as jsonpath_parse

from .errors import PathError
from .headers import is_credential, why_dropped

ROOTS = ("body", "headers")


class _Missing:
    """The value of a path that resolves to nothing."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self):
        return (_Missing, ())


MISSING: Any = _Missing()
WILDCARD = object()

_KEY = re.compile(r"[^.\[\]\s\"']+")
_INDEX = re.compile(r"(-?\d+)\]")


def is_nothing(value: Any) -> bool:
    """Missing, null, or an empty string (how Clay sends an empty cell)."""
    return value is MISSING or value is None or (type(value) is str and value == "")


@dataclass(frozen=True, eq=False)
class Path:
    """A compiled path. `resolve(context)` returns the value or `MISSING`."""

    text: str
    root: str
    steps: tuple = ()
    wildcard: bool = False
    _compiled: Any = field(default=None, repr=False)

    def resolve(self, context: Mapping[str, Any]) -> Any:
        if self.wildcard:
            found = [match.value for match in self._compiled.find(context)]
            return found if found else MISSING
        value = context.get(self.root, MISSING)
        for step in self.steps:
            if type(step) is int:
                if type(value) is not list or not -len(value) <= step < len(value):
                    return MISSING
                value = value[step]
            else:
                if type(value) is not dict:
                    return MISSING
                value = value.get(step, MISSING)
                if value is MISSING:
                    return MISSING
        return value

    @property
    def jsonpath(self) -> str:
        """The same path as jsonpath-ng text, rooted at the event context."""
        parts = ["$", _quote(self.root)]
        for step in self.steps:
            if step is WILDCARD:
                parts.append("[*]")
            elif type(step) is int:
                parts.append(f"[{step}]")
            else:
                parts.append(_quote(step))
        return "".join(parts)

    @property
    def first_key(self) -> str | None:
        """The first key under the root (`email` for `body.email`), if any."""
        return self.steps[0] if self.steps and isinstance(self.steps[0], str) else None

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _quote(key: str) -> str:
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"['{escaped}']"


def _fail(text: str, pos: int, problem: str, hint: str) -> PathError:
    return PathError(f"path `{text}`: {problem} at character {pos + 1}; {hint}", path=text, position=pos)


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted key starting at the quote; return the key and the index after it."""
    quote = text[pos]
    out = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if quote == '"':
                # Double-quoted keys follow JSON string escapes.
                try:
                    value, end = json.JSONDecoder().raw_decode(text, pos)
                except ValueError as exc:
                    raise _fail(text, pos, "bad escape in quoted key", f"{exc.msg}") from None
                return value, end
            out.append(nxt)
            i += 2
            continue
        if ch == quote:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise _fail(text, pos, "unterminated quoted key", f"close it with {quote}]")


@lru_cache(maxsize=4096)
def compile_path(text: str) -> Path:
    """Parse a path once; raise `PathError` saying where and what to write instead."""
    if not isinstance(text, str):
        raise PathError(f"a path must be a string such as `body.email`, got {json.dumps(text)}")
    original = text
    text = text.strip()
    if not text:
        raise PathError("a path is empty; write one such as `body.email` or `headers.x-clay-table-id`")
    match = re.match(r"[A-Za-z_$][\w$]*", text)
    root = match.group(0) if match else ""
    if root not in ROOTS:
        hint = "paths start with `body` or `headers`, e.g. `body.email` or `headers.x-clay-table-id`"
        if root in ("$", "data", "payload", "row"):
            hint += f"; drop the leading `{root}`"
        elif match and not text.startswith(("body", "headers")):
            hint += f"; did you mean `body.{text}`?"
        raise _fail(original, 0, f"unknown root `{root or text[:1]}`", hint)
    pos = len(root)
    steps: list = []
    wildcard = False
    while pos < len(text):
        ch = text[pos]
        if ch == ".":
            key = _KEY.match(text, pos + 1)
            if not key or key.group(0) == "*":
                bad = text[pos + 1 : pos + 2]
                if bad == "*":
                    raise _fail(original, pos + 1, "`.*` is not supported", "use `[*]` for every element")
                raise _fail(
                    original,
                    pos + 1,
                    "expected a key after `.`",
                    'for keys with spaces, dots or quotes use brackets: body["Full Name"]',
                )
            steps.append(key.group(0))
            pos = key.end()
        elif ch == "[":
            nxt = text[pos + 1 : pos + 2]
            if text.startswith("[*]", pos):
                steps.append(WILDCARD)
                wildcard = True
                pos += 3
            elif nxt in ('"', "'"):
                key, pos = _read_quoted(text, pos + 1)
                if text[pos : pos + 1] != "]":
                    raise _fail(original, pos, "expected `]` after the quoted key", 'write body["Full Name"]')
                steps.append(key)
                pos += 1
            else:
                index = _INDEX.match(text, pos + 1)
                if not index:
                    raise _fail(
                        original,
                        pos,
                        "expected an index, `*` or a quoted key inside `[]`",
                        'write [0], [*] or ["Key Name"]',
                    )
                steps.append(int(index.group(1)))
                pos = index.end()
        else:
            raise _fail(
                original,
                pos,
                f"unexpected `{ch}`",
                'separate keys with `.`; for keys with spaces or dots use body["Full Name"]',
            )
    if root == "headers" and steps and isinstance(steps[0], str):
        steps[0] = steps[0].lower()
        if is_credential(steps[0]):
            raise PathError(f"path `{original.strip()}`: {why_dropped(steps[0])}", path=original, position=0)
    compiled = jsonpath_parse(_jsonpath_text(root, steps)) if wildcard else None
    canonical = root + "".join(_render(step) for step in steps)
    path = Path(text=canonical, root=root, steps=tuple(steps), wildcard=wildcard, _compiled=compiled)
    fast = _fast_resolver(root, steps) if not wildcard else None
    if fast is not None:
        # An instance attribute shadows the general method: the common shapes skip the loop.
        object.__setattr__(path, "resolve", fast)
    return path


def _fast_resolver(root: str, steps: list):
    """Specialised resolvers for `body`, `body.key` and `body.key.key` (most Clay paths)."""
    if not steps:
        return lambda context: context.get(root, MISSING)
    if len(steps) == 1 and type(steps[0]) is str:
        key = steps[0]

        def one(context):
            value = context.get(root, MISSING)
            return value.get(key, MISSING) if type(value) is dict else MISSING

        return one
    if len(steps) == 2 and type(steps[0]) is str and type(steps[1]) is str:
        first, second = steps

        def two(context):
            value = context.get(root, MISSING)
            value = value.get(first, MISSING) if type(value) is dict else MISSING
            return value.get(second, MISSING) if type(value) is dict else MISSING

        return two
    return None


_PLAIN_KEY = re.compile(r"[A-Za-z_][\w\-]*\Z")


def _render(step) -> str:
    if step is WILDCARD:
        return "[*]"
    if type(step) is int:
        return f"[{step}]"
    if _PLAIN_KEY.match(step):
        return f".{step}"
    return f"[{json.dumps(step, ensure_ascii=False)}]"


def _jsonpath_text(root: str, steps) -> str:
    return Path(text="", root=root, steps=tuple(steps)).jsonpath


def jsonpath_reference(path: Path):
    """The jsonpath-ng expression for `path`, used as the reference implementation."""
    return jsonpath_parse(path.jsonpath)

"""Request bodies: the JSON object a Clay row arrives as, or an error saying what to change in Clay.

Well-formed bodies take msgspec's strict decoder; everything else goes the tolerant way (control
characters inside strings are accepted), which also explains what is wrong and where.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec

from .errors import InvalidBody

MAX_DEPTH = 100

_QUOTE_HINT = (
    'wrap each inserted Clay column in double quotes, e.g. "email": "/Work Email", '
    "and make sure the cell text has no unescaped double quotes"
)


def _visible(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _snippet(text: str, pos: int, radius: int = 24) -> str:
    start, end = max(0, pos - radius), min(len(text), pos + radius)
    shown = _visible(text[start:pos]) + "⟨here⟩" + _visible(text[pos:end])
    return ("…" if start else "") + shown + ("…" if end < len(text) else "")


def _decode_hint(text: str, exc: json.JSONDecodeError) -> str:
    msg, pos = exc.msg, exc.pos
    char = text[pos : pos + 1]
    if msg == "Expecting value":
        if not char:
            return "the body ends where a value should be; " + _QUOTE_HINT
        if char in ",}]":
            return (
                "a value is missing (an empty Clay cell inserted without quotes leaves nothing there); "
                + _QUOTE_HINT
            )
        return "a value is not valid JSON (text must be in double quotes); " + _QUOTE_HINT
    if msg.startswith("Expecting ',' delimiter") or msg.startswith("Expecting ':' delimiter"):
        return "a value probably contains a double quote that is not escaped; " + _QUOTE_HINT
    if msg.startswith("Expecting property name"):
        return "keys need double quotes, and there must be no comma before a closing }"
    if msg.startswith("Extra data"):
        return "there is text after the JSON object; the body must be exactly one object"
    if msg.startswith("Invalid \\escape") or msg.startswith("Invalid \\u"):
        return "a backslash in a value is not escaped; write \\\\ for a literal backslash"
    if msg.startswith("Unterminated string"):
        return "a string is not closed; " + _QUOTE_HINT
    return _QUOTE_HINT


def _refuse_constant(name: str):
    raise ValueError(f"`{name}` is not JSON; send numbers as digits or as text")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 would become infinity, then null on the way out
        raise ValueError(f"`{text}` is too large for a number; send it as text")
    return value


# strict=False: Clay's templating puts raw control characters inside strings.
_DECODER = json.JSONDecoder(strict=False, parse_constant=_refuse_constant, parse_float=_finite_float)
# An escaped UTF-16 surrogate (`\ud83d`): valid JSON, but alone it is not a character.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _lone_surrogate(value: Any) -> str | None:
    """The first string (key or value) holding an unpaired surrogate, if any."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


_FAST_DECODER = msgspec.json.Decoder()


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


def parse_body(raw: bytes | str | dict) -> dict:
    """The body as a JSON object; control characters inside strings are tolerated.

    Raises `InvalidBody` saying exactly what is wrong, where, and what to change in Clay.
    """
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        nesting = raw.count(b"{") + raw.count(b"[")
        # msgspec is strict (no control characters, no BOM): it takes the well-formed bodies
        # fast, and everything else goes the tolerant way below, which also explains errors.
        try:
            body = _FAST_DECODER.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            pass
        else:
            if type(body) is dict and nesting <= MAX_DEPTH:
                return body
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidBody(
                f"body is not UTF-8 text (byte 0x{raw[exc.start]:02x} at position {exc.start}); "
                "send the body as UTF-8 JSON"
            ) from None
    else:
        text = raw[1:] if raw.startswith("\ufeff") else raw
        nesting = text.count("{") + text.count("[")
    if not text.strip():
        raise InvalidBody(
            "body is empty; set the HTTP API column body to a JSON object such as "
            '{"event": "lead.enriched", "email": "/Work Email"}'
        )
    try:
        body = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidBody(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(near {_snippet(text, exc.pos)}); {_decode_hint(text, exc)}"
        ) from None
    except RecursionError:
        raise InvalidBody(f"body is nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        raise InvalidBody(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(body), "a number"
        )
        raise InvalidBody(f'body must be a JSON object such as {{"event": "lead.enriched", ...}}, got {kind}')
    if nesting > MAX_DEPTH and _too_deep(body):
        raise InvalidBody(f"body is nested too deeply (more than {MAX_DEPTH} levels)")
    if _SURROGATE_ESCAPE.search(text) and (bad := _lone_surrogate(body)) is not None:
        where = next(i for i, ch in enumerate(bad) if 0xD800 <= ord(ch) <= 0xDFFF)
        raise InvalidBody(
            f"body has a string with half a character in it (the escape \\u{ord(bad[where]):04x} "
            f"without its pair, near {bad[max(0, where - 20) : where]!r}), which is not text; "
            "a value was probably cut in the middle of an emoji; send the whole value"
        )
    return body

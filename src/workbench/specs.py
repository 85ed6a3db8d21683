"""Value specs (how a parameter gets its value) and `when` conditions, compiled once.

A spec is one of: a path string; `{"path", "as", "default"}`; `{"value": V}`;
`{"template": "acct-{{body.company_domain}}"}`; `{"first": [P1, P2, ...]}`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

from .errors import CoercionError, PathError
from .paths import MISSING, Path, compile_path, is_nothing

COERCIONS = ("string", "number", "integer", "boolean", "json", "list", "e164")
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "matches", "exists")

_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def _preview(value: Any, limit: int = 60) -> str:
    """A short, quoted rendering of a value for error messages."""
    if isinstance(value, str):
        return json.dumps(value[:limit] + ("…" if len(value) > limit else ""), ensure_ascii=False)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text[:limit] + ("…" if len(text) > limit else "")


def to_text(value: Any) -> str:
    """A value as text: strings as they are, booleans as true/false, objects as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return (
            repr(value)
            if isinstance(value, float) and not value.is_integer()
            else str(int(value) if isinstance(value, float) else value)
        )
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise CoercionError(f"cannot read {_preview(value)} as number (it is a boolean)")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise CoercionError(f"cannot read {_preview(value)} as number (not finite)")
        return value
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if text.endswith("%"):
            text = text[:-1]
        try:
            if re.fullmatch(r"[+-]?\d+", text):
                return int(text)
            number = float(text)
        except ValueError:
            number = None
        if number is not None and math.isfinite(number):
            return number
    raise CoercionError(f"cannot read {_preview(value)} as number")


def _e164(value: Any, region: str | None) -> str:
    """A phone number as E.164 (`+14155550123`), as Knock's SMS channels expect it.

    Numbers written without a country code are read as numbers of `region` (e.g. "US").
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CoercionError(f"cannot read {_preview(value)} as a phone number")
    text = str(value)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            hint = (
                'it has no country code: start it with + or set "region" (e.g. "US")'
                if region is None
                else "its country code is unknown"
            )
        else:
            hint = "it does not look like a phone number"
        raise CoercionError(f"cannot read {_preview(value)} as a phone number ({hint})") from None
    if not phonenumbers.is_valid_number(number):
        where = f" in {region}" if region and not text.lstrip().startswith("+") else ""
        raise CoercionError(f"{_preview(value)} is not a valid phone number{where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_problem(region: Any, as_: str | None) -> str | None:
    """What is wrong with a `region` next to `as_` (None when it is a known country code with e164)."""
    if as_ != "e164":
        return '`region` goes with `"as": "e164"` (phone numbers)'
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return (
            f"unknown region {_preview(region)}; use a two-letter country code such as "
            '"US", "GB" or "FR" (upper case)'
        )
    return None


def coerce(value: Any, as_: str, region: str | None = None) -> Any:
    """Read `value` as type `as_`; raise `CoercionError` naming the value otherwise.

    `region` is the country a phone number without a country code belongs to (`as_` e164 only).
    """
    if as_ == "e164":
        return _e164(value, region)
    if as_ == "string":
        return to_text(value)
    if as_ == "number":
        return _number(value)
    if as_ == "integer":
        number = _number(value) if not isinstance(value, bool) else None
        if number is None or (isinstance(number, float) and not number.is_integer()):
            raise CoercionError(f"cannot read {_preview(value)} as integer")
        return int(number)
    if as_ == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise CoercionError(f"cannot read {_preview(value)} as boolean (use true/false, yes/no or 1/0)")
    if as_ == "json":
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value, strict=False)
        except ValueError as exc:
            raise CoercionError(
                f"cannot read {_preview(value)} as JSON ({exc.msg} at character {exc.pos + 1})"
            ) from None
        except RecursionError:
            raise CoercionError(f"cannot read {_preview(value)} as JSON (nested too deep)") from None
    if as_ == "list":
        if isinstance(value, list):
            return value
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    parsed = json.loads(text, strict=False)
                except (ValueError, RecursionError):
                    parsed = None
                if isinstance(parsed, list):
                    return parsed
            return [part.strip() for part in text.split(",") if part.strip()]
        return [value]
    raise CoercionError(f"unknown coercion `{as_}`; use one of {', '.join(COERCIONS)}")


class ValueSpec:
    """How a parameter gets its value. `resolve` returns the value or MISSING."""

    def resolve(self, context: Mapping[str, Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def paths(self) -> tuple[Path, ...]:
        return ()


@dataclass(frozen=True)
class PathValue(ValueSpec):
    path: Path
    as_: str | None = None
    default: Any = MISSING
    region: str | None = None  # phone numbers without a country code are of this region (e164)

    def resolve(self, context):
        value = self.path.resolve(context)
        if is_nothing(value):
            return self.default
        if self.as_ is not None:
            try:
                return coerce(value, self.as_, self.region)
            except CoercionError as exc:
                raise CoercionError(f"path `{self.path}`: {exc}") from None
        return value

    def describe(self) -> str:
        return f"path `{self.path}`"

    @property
    def paths(self):
        return (self.path,)

    def to_json(self):
        if self.as_ is None and self.default is MISSING:
            return self.path.text
        out: dict[str, Any] = {"path": self.path.text}
        if self.as_ is not None:
            out["as"] = self.as_
        if self.default is not MISSING:
            out["default"] = self.default
        if self.region is not None:
            out["region"] = self.region
        return out


@dataclass(frozen=True)
class Literal(ValueSpec):
    value: Any

    def resolve(self, context):
        return self.value

    def describe(self) -> str:
        return f"literal value {_preview(self.value)}"

    def to_json(self):
        return {"value": self.value}


_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")


@dataclass(frozen=True)
class Template(ValueSpec):
    """Text with `{{path}}` placeholders; a placeholder that resolves to nothing makes
    the whole template resolve to nothing, so `acct-` is never sent for a missing domain."""

    text: str
    parts: tuple  # alternating literal text and Path

    def resolve(self, context):
        out = []
        for part in self.parts:
            if isinstance(part, Path):
                value = part.resolve(context)
                if is_nothing(value):
                    return MISSING
                out.append(to_text(value))
            else:
                out.append(part)
        return "".join(out)

    def describe(self) -> str:
        return f"template `{self.text}`"

    @property
    def paths(self):
        return tuple(p for p in self.parts if isinstance(p, Path))

    def to_json(self):
        return {"template": self.text}


@dataclass(frozen=True)
class First(ValueSpec):
    options: tuple[ValueSpec, ...]

    def resolve(self, context):
        for option in self.options:
            value = option.resolve(context)
            if not is_nothing(value):
                return value
        return MISSING

    def describe(self) -> str:
        return "first of " + ", ".join(option.describe() for option in self.options)

    @property
    def paths(self):
        return tuple(p for option in self.options for p in option.paths)

    def to_json(self):
        return {"first": [option.to_json() for option in self.options]}


def compile_template(text: str) -> Template:
    parts: list = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > last:
            parts.append(text[last : match.start()])
        parts.append(compile_path(match.group(1)))
        last = match.end()
    if last < len(text):
        parts.append(text[last:])
    if not any(isinstance(p, Path) for p in parts):
        raise PathError(
            f'template `{text}` has no `{{{{path}}}}` placeholder; use {{"value": ...}} for fixed text'
        )
    return Template(text=text, parts=tuple(parts))


def compile_spec(raw: Any, problems: list, where: str) -> ValueSpec | None:
    """Compile a value spec, appending (location, message) to `problems` on error."""
    try:
        return _compile_spec(raw, problems, where)
    except PathError as exc:
        problems.append((where, str(exc)))
        return None


def _compile_spec(raw, problems, where):
    if isinstance(raw, str):
        return PathValue(compile_path(raw))
    if not isinstance(raw, dict):
        problems.append(
            (
                where,
                f"expected a path string or an object, got {_preview(raw)}; "
                'write "body.email" or {"value": ...} for a fixed value',
            )
        )
        return None
    kinds = [k for k in ("path", "value", "template", "first") if k in raw]
    if len(kinds) != 1:
        problems.append(
            (
                where,
                "a value spec needs exactly one of `path`, `value`, `template`, `first`"
                + (f" (found {', '.join(kinds)})" if kinds else f" (found keys {', '.join(map(str, raw))})"),
            )
        )
        return None
    kind = kinds[0]
    allowed = {
        "path": {"path", "as", "default", "region"},
        "value": {"value"},
        "template": {"template"},
        "first": {"first"},
    }
    extra = set(raw) - allowed[kind]
    if extra:
        problems.append(
            (
                where,
                f"unknown key(s) {', '.join(sorted(map(str, extra)))} in a `{kind}` spec; "
                f"allowed: {', '.join(sorted(allowed[kind]))}",
            )
        )
        return None
    if kind == "value":
        return Literal(raw["value"])
    if kind == "template":
        if not isinstance(raw["template"], str):
            problems.append((f"{where}.template", 'a template must be a string like "acct-{{body.domain}}"'))
            return None
        return compile_template(raw["template"])
    if kind == "first":
        options = raw["first"]
        if not isinstance(options, list) or not options:
            problems.append((f"{where}.first", "`first` takes a non-empty list of paths"))
            return None
        compiled = [compile_spec(o, problems, f"{where}.first[{i}]") for i, o in enumerate(options)]
        return First(tuple(compiled)) if all(compiled) else None
    as_ = raw.get("as")
    if as_ is not None and as_ not in COERCIONS:
        problems.append(
            (f"{where}.as", f"unknown coercion {_preview(as_)}; use one of {', '.join(COERCIONS)}")
        )
        return None
    if not isinstance(raw["path"], str):
        problems.append(
            (f"{where}.path", f'a path must be a string such as "body.email", got {_preview(raw["path"])}')
        )
        return None
    region = raw.get("region")
    if region is not None and (problem := region_problem(region, as_)):
        problems.append((f"{where}.region", problem))
        return None
    return PathValue(compile_path(raw["path"]), as_, raw.get("default", MISSING), region)


@dataclass(frozen=True)
class ConditionResult:
    ok: bool
    reason: str


@dataclass(frozen=True)
class Condition:
    path: Path
    op: str
    operand: Any
    as_: str | None = None
    regex: re.Pattern | None = None

    def evaluate(self, context: Mapping[str, Any]) -> ConditionResult:
        raw = self.path.resolve(context)
        label = f"`{self.path}`"
        if self.op == "exists":
            present = not is_nothing(raw)
            ok = present == bool(self.operand)
            return ConditionResult(ok, f"{label} {'exists' if present else 'is missing'}")
        if is_nothing(raw):
            return ConditionResult(False, f"{label} is missing")
        try:
            value, operand = self._align(raw)
        except CoercionError as exc:
            return ConditionResult(False, f"{label}: {exc}")
        try:
            ok = self._apply(value, operand)
        except TypeError:
            return ConditionResult(
                False, f"{label} is {_preview(value)}, which cannot be compared with {_preview(operand)}"
            )
        symbol = _SYMBOLS[self.op]
        verdict = "" if ok else "not "
        return ConditionResult(ok, f"{label} is {_preview(value)}, {verdict}{symbol} {_preview(operand)}")

    def _align(self, value):
        operand = self.operand
        if self.as_ is not None:
            value = coerce(value, self.as_)
            if self.op in ("eq", "ne", "gt", "gte", "lt", "lte"):
                operand = coerce(operand, self.as_)
            return value, operand
        sample = operand[0] if self.op == "in" and isinstance(operand, list) and operand else operand
        # Clay sends every cell as text: compare "87" with 80 as numbers, "true" with true as booleans.
        if isinstance(value, str) and self.op not in ("contains", "matches"):
            if isinstance(sample, bool):
                value = coerce(value, "boolean")
            elif isinstance(sample, (int, float)):
                value = coerce(value, "number")
        return value, operand

    def _apply(self, value, operand) -> bool:
        op = self.op
        if op == "eq":
            return value == operand
        if op == "ne":
            return value != operand
        if op == "gt":
            return value > operand
        if op == "gte":
            return value >= operand
        if op == "lt":
            return value < operand
        if op == "lte":
            return value <= operand
        if op == "in":
            return value in operand
        if op == "contains":
            if isinstance(value, (str, list, dict)):
                return operand in value
            raise TypeError
        if op == "matches":
            return self.regex.search(to_text(value)) is not None
        raise TypeError  # pragma: no cover - validated at load

    def to_json(self):
        out: dict[str, Any] = {"path": self.path.text}
        if self.as_ is not None:
            out["as"] = self.as_
        out[self.op] = self.operand
        return out


_SYMBOLS = {
    "eq": "=",
    "ne": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "in",
    "contains": "containing",
    "matches": "matching",
}


def compile_condition(raw: Any, problems: list, where: str) -> Condition | None:
    if not isinstance(raw, dict):
        problems.append((where, 'a condition is an object like {"path": "body.icp_score", "gte": 80}'))
        return None
    ops = [k for k in raw if k in OPERATORS]
    extra = set(raw) - set(OPERATORS) - {"path", "as"}
    if extra:
        problems.append(
            (
                where,
                f"unknown key(s) {', '.join(sorted(map(str, extra)))}; operators are {', '.join(OPERATORS)}",
            )
        )
        return None
    if len(ops) != 1:
        problems.append(
            (
                where,
                f"a condition needs exactly one operator of {', '.join(OPERATORS)}"
                + (f" (found {', '.join(ops)})" if ops else ""),
            )
        )
        return None
    op = ops[0]
    operand = raw[op]
    as_ = raw.get("as")
    if "path" not in raw or not isinstance(raw["path"], str):
        problems.append((f"{where}.path", 'a condition needs a `path` string such as "body.icp_score"'))
        return None
    try:
        path = compile_path(raw["path"])
    except PathError as exc:
        problems.append((f"{where}.path", str(exc)))
        return None
    if as_ is not None and as_ not in COERCIONS:
        problems.append(
            (f"{where}.as", f"unknown coercion {_preview(as_)}; use one of {', '.join(COERCIONS)}")
        )
        return None
    regex = None
    if op == "matches":
        if not isinstance(operand, str):
            problems.append((f"{where}.matches", "`matches` takes a regular expression string"))
            return None
        try:
            regex = re.compile(operand)
        except re.error as exc:
            problems.append((f"{where}.matches", f"invalid regular expression: {exc}"))
            return None
    elif op == "in" and not isinstance(operand, list):
        problems.append((f"{where}.in", "`in` takes a list of values"))
        return None
    elif op == "exists" and not isinstance(operand, bool):
        problems.append((f"{where}.exists", "`exists` takes true or false"))
        return None
    elif op in ("gt", "gte", "lt", "lte") and (operand is None or isinstance(operand, (bool, dict, list))):
        problems.append((f"{where}.{op}", f"`{op}` takes a number or a string"))
        return None
    if as_ is not None and op in ("eq", "ne", "gt", "gte", "lt", "lte"):
        try:
            coerce(operand, as_)
        except CoercionError as exc:
            problems.append((f"{where}.{op}", f"the operand does not match `as: {as_}`: {exc}"))
            return None
    return Condition(path=path, op=op, operand=operand, as_=as_, regex=regex)

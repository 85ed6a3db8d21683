"""Knock's published API description (`specs/api-openapi.yml`, a copy of Knock's file), as the fake Knock reads it.

`KnockSpec.check(method, path, query, body)` finds the operation a request is for and validates
its path, query and JSON body with `jsonschema` against the operation's schemas, `$ref`s resolved
through a `referencing` registry holding the whole document. Two readings of OpenAPI 3.0 are
made explicit: `nullable: true` also admits null, and `oneOf` is read as `anyOf` (the spec's
alternatives overlap: an object reference `{"id", "collection"}` is also a valid inline user,
whose properties are open, and Knock takes it). Every check is counted in `CONTRACT`, which the
suite prints at its end.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

# The copy kept with the fakes (Knock's file without its SDK code samples, checked against the
# original by tests/sinks/test_spec_copy.py); KNOCK_SPEC_DIR points elsewhere, e.g. at a newer file.
SPEC_DIR = Path(os.environ.get("KNOCK_SPEC_DIR", Path(__file__).resolve().parent / "specs"))
API_SPEC = SPEC_DIR / "api-openapi.yml"
OVERVIEW = SPEC_DIR / "api-reference-overview.mdx"
_URI = "urn:knock:api-openapi"
_METHODS = ("get", "put", "post", "delete", "patch")


def spec_missing_reason() -> str | None:
    """Why the spec cannot be read (None when it can)."""
    if API_SPEC.is_file():
        return None
    return (
        f"Knock's API description is not at {API_SPEC}: the strict fake Knock validates every "
        "request against it (restore tests/fakes/specs, or set KNOCK_SPEC_DIR to a folder holding it)"
    )


@dataclass
class Contract:
    """What the fakes checked in this process: requests checked, and those the spec refused."""

    checked: int = 0
    refused: list[str] = field(default_factory=list)  # "METHOD path: why", by the project's SDK
    answers: int = 0  # the fake's own 2xx answers checked against the spec's response schemas
    refused_elsewhere: int = 0  # refusals the tests provoked on purpose, without the SDK
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, refusal: str | None, by_sdk: bool) -> None:
        with self.lock:
            self.checked += 1
            if refusal is not None:
                if by_sdk:
                    self.refused.append(refusal)
                else:
                    self.refused_elsewhere += 1

    def answered(self) -> None:
        with self.lock:
            self.answers += 1


CONTRACT = Contract()


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema (draft 7), references pointed at the registry."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("example", "examples", "x-struct", "x-validate", "description"):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith("#"):
            out[key] = _URI + value
        elif key == "oneOf":
            out["anyOf"] = _openapi_to_jsonschema(value)
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _openapi_to_jsonschema(schema) for name, schema in value.items()}
        else:
            out[key] = _openapi_to_jsonschema(value)
    if out.pop("nullable", False):
        return {"anyOf": [{"type": "null"}, out]}
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern
    spec: dict
    literal_segments: int

    @property
    def tier(self) -> int | None:
        return self.spec.get("x-ratelimit-tier")

    @property
    def operation_id(self) -> str:
        return self.spec.get("operationId") or f"{self.method} {self.template}"


class KnockSpec:
    def __init__(self, path: Path = API_SPEC):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, encoding="utf-8") as f:
            self.document = yaml.load(f, Loader=loader)
        converted = _openapi_to_jsonschema(self.document)
        self.registry = Registry().with_resource(_URI, Resource.from_contents(converted, DRAFT7))
        self.operations: list[Operation] = []
        for template, item in converted["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)) + "$")
            literal = sum(1 for part in template.split("/") if part and not part.startswith("{"))
            for method in _METHODS:
                if method in item:
                    self.operations.append(
                        Operation(method.upper(), template, pattern, item[method], literal)
                    )
        # The most literal match wins: /v1/users/bulk/delete before /v1/users/{user_id}/...
        self.operations.sort(key=lambda op: -op.literal_segments)
        self._validators: dict[int, Draft7Validator] = {}
        self._lock = threading.Lock()

    def operation(self, method: str, path: str) -> Operation | None:
        for op in self.operations:
            if op.method == method and op.pattern.match(path):
                return op
        return None

    def tier(self, method: str, template: str) -> int | None:
        item = self.document["paths"].get(template) or {}
        return (item.get(method.lower()) or {}).get("x-ratelimit-tier")

    def _validator(self, schema: dict) -> Draft7Validator:
        key = id(schema)
        with self._lock:
            validator = self._validators.get(key)
            if validator is None:
                validator = self._validators[key] = Draft7Validator(schema, registry=self.registry)
        return validator

    def check(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[Operation | None, str | None]:
        """(the operation, None) when the spec allows the request, else (operation or None, why not)."""
        op = self.operation(method, path)
        if op is None:
            return None, f"the spec has no operation {method} {path}"
        for param in op.spec.get("parameters", []):
            problem = self._check_parameter(op, param, path, query)
            if problem:
                return op, problem
        request_body = op.spec.get("requestBody")
        if request_body is not None:
            if body is None:
                if request_body.get("required"):
                    return op, "the request has no JSON body; the operation requires one"
            else:
                schema = request_body.get("content", {}).get("application/json", {}).get("schema")
                if schema is not None:
                    error = next(iter(sorted(self._validator(schema).iter_errors(body), key=_depth)), None)
                    if error is not None:
                        where = "body" + "".join(f"[{p!r}]" for p in error.absolute_path)
                        return op, f"{where}: {error.message[:300]}"
        return op, None

    def check_answer(self, op: Operation, status: int, body: Any) -> str | None:
        """Why the fake's own answer is not what the spec says Knock answers (None when it is)."""
        response = op.spec.get("responses", {}).get(str(status))
        if response is None:
            return f"the spec lists no {status} answer for {op.operation_id}" if 200 <= status < 300 else None
        schema = (response.get("content") or {}).get("application/json", {}).get("schema")
        if schema is None:
            return None if body is None else f"the spec's {status} answer to {op.operation_id} has no body"
        error = next(iter(sorted(self._validator(schema).iter_errors(body), key=_depth)), None)
        if error is None:
            return None
        where = "answer" + "".join(f"[{p!r}]" for p in error.absolute_path)
        return f"{where}: {error.message[:300]}"

    def _check_parameter(
        self, op: Operation, param: dict, path: str, query: dict[str, list[str]]
    ) -> str | None:
        name, where, schema = param["name"], param["in"], param.get("schema") or {}
        if where == "path":
            names = re.findall(r"\{([^}]+)\}", op.template)
            value = op.pattern.match(path).group(names.index(name) + 1) if name in names else None
            values = [value] if value is not None else []
        elif where == "query":
            values = query.get(name, []) + query.get(f"{name}[]", [])
        else:
            return None
        if not values:
            return f"{where} parameter `{name}` is required" if param.get("required") else None
        typed = schema.get("type")
        if typed == "array":
            item_type = (schema.get("items") or {}).get("type")
            checks = values
        else:
            item_type, checks = typed, values[:1]
            if len(values) > 1:
                return f"{where} parameter `{name}` is given {len(values)} times"
        for value in checks:
            if item_type == "boolean" and value not in ("true", "false"):
                return f"{where} parameter `{name}`: {value!r} is not a boolean"
            if item_type == "integer" and not re.fullmatch(r"-?\d+", value):
                return f"{where} parameter `{name}`: {value!r} is not an integer"
            if item_type == "string" and value == "":
                return f"{where} parameter `{name}` is empty"
        if schema.get("format") == "uuid" and not re.fullmatch(r"[0-9a-fA-F-]{36}", values[0]):
            return f"{where} parameter `{name}`: {values[0]!r} is not a UUID"
        return None


def _depth(error) -> int:
    return -len(error.absolute_path)


@functools.lru_cache(maxsize=1)
def knock_spec() -> KnockSpec:
    """The spec, read once a process."""
    return KnockSpec()


def tier_rates() -> dict[int, int]:
    """Requests a second per tier, from the overview page's table."""
    text = OVERVIEW.read_text(encoding="utf-8")
    rows = re.findall(r"<RateLimit tier=\{(\d)\} />, \"([\d,]+) requests? / second\"", text)
    return {int(tier): int(rate.replace(",", "")) for tier, rate in rows}

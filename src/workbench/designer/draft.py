"""The config being designed, as plain JSON, and the choices the designer offers for a parameter.

A parameter choice is `(kind, text, as_)`: kind `column` (a Clay column, read through the body
template), `path`, `value` (a literal; JSON text is parsed), `template`, `first` (comma-separated
paths) or `none`. These functions translate choices to the config's value specs and back.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from ..actions import ACTION_TYPES, EXECUTION_ORDER
from ..clay.bodies import DEFAULT_EVENT, template_column

KINDS = ("none", "column", "path", "value", "template", "first")
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def new_config(environment: str = "development", template: Mapping[str, Any] | None = None) -> dict:
    """A minimal config with one environment and no mappings yet."""
    return {
        "source": "clay",
        "event_type_path": "body.event",
        "environments": {environment: new_environment(environment)},
        "clay": {"body_template": dict(template or {"event": {"value": DEFAULT_EVENT}})},
    }


def new_environment(name: str) -> dict:
    secret = "CLAY_SIGNING_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    return {"signing_secrets": [{"$env": secret}], "idempotency": None, "sink": "local", "mappings": []}


def copy_config(data: Mapping[str, Any]) -> dict:
    return copy.deepcopy(dict(data))


def body_path(key: str) -> str:
    """The path of a top-level body key: `body.email`, or `body["Full Name"]` when needed."""
    if _SIMPLE_KEY.match(key):
        return f"body.{key}"
    return "body[" + json.dumps(key, ensure_ascii=False) + "]"


def key_for_column(template: dict, column: str, snake) -> str:
    """The body key that carries `column`, adding it to the template if it is not there yet."""
    for key, entry in template.items():
        if template_column(entry) == column:
            return key
    key = base = snake(column) or "column"
    n = 2
    while key in template:
        key, n = f"{base}_{n}", n + 1
    template[key] = column
    return key


def _path_spec(path: str, as_: str | None, region: str | None) -> Any:
    if not as_:
        return path
    spec = {"path": path, "as": as_}
    if as_ == "e164" and region:
        spec["region"] = region
    return spec


def spec_from_choice(
    kind: str, text: str, as_: str | None, template: dict, snake, region: str | None = None
) -> Any:
    """The value spec for a choice; `None` means the parameter is not mapped."""
    text = (text or "").strip()
    if kind == "none" or (kind != "value" and not text):
        return None
    if kind == "column":
        return _path_spec(body_path(key_for_column(template, text, snake)), as_, region)
    if kind == "path":
        return _path_spec(text, as_, region)
    if kind == "value":
        return {"value": parse_literal(text)}
    if kind == "template":
        return {"template": text}
    if kind == "first":
        return {"first": [part.strip() for part in text.split(",") if part.strip()]}
    raise ValueError(f"unknown parameter kind {kind!r}; use one of {', '.join(KINDS)}")


def choice_from_spec(spec: Any, template: Mapping[str, Any]) -> tuple[str, str, str | None, str | None]:
    """The designer's choice `(kind, text, as_, region)` showing an existing value spec."""
    if spec is None:
        return "none", "", None, None
    as_ = region = None
    path = spec
    if isinstance(spec, Mapping):
        if "value" in spec:
            return "value", format_literal(spec["value"]), None, None
        if "template" in spec:
            return "template", str(spec["template"]), None, None
        if "first" in spec:
            parts = [p if isinstance(p, str) else json.dumps(p) for p in spec["first"]]
            return "first", ", ".join(parts), None, None
        if "default" in spec:
            # Only the raw path form keeps a default; the designer shows it as a path.
            return "path", json.dumps(spec, ensure_ascii=False), None, None
        path, as_, region = spec.get("path", ""), spec.get("as"), spec.get("region")
    for key, entry in template.items():
        column = template_column(entry)
        if column is not None and path == body_path(key):
            return "column", column, as_, region
    return "path", str(path), as_, region


def parse_literal(text: str) -> Any:
    """Literal text as JSON when it is JSON (`["sales-team"]`, `true`), else as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def format_literal(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def ordered_mappings(mappings: list[dict], event: str) -> list[int]:
    """Indexes of `event`'s mappings in Knock's execution order (config order within a type)."""
    chosen = [i for i, m in enumerate(mappings) if m.get("event") == event]

    def rank(i):
        action = mappings[i].get("action")
        return (EXECUTION_ORDER.index(action) if action in EXECUTION_ORDER else len(EXECUTION_ORDER), i)

    return sorted(chosen, key=rank)


def new_mapping(event: str, action: str, template: dict, snake, columns: list[str]) -> dict:
    """A mapping with its required params pre-filled where a column obviously fits."""
    spec = ACTION_TYPES[action]
    params: dict[str, Any] = {}
    guesses = {
        "id": ("email", "domain"),
        "email": ("email",),
        "name": ("full name", "name"),
        "phone_number": ("phone",),
        "avatar": ("picture", "avatar", "photo"),
    }
    for name in spec.params:
        for hint in guesses.get(name, ()):
            column = next((c for c in columns if hint in c.lower()), None)
            if column is not None:
                params[name] = spec_from_choice("column", column, None, template, snake)
                break
        if name in ("properties", "data") and name not in params:
            params[name] = "body"
        if name in spec.required and name not in params:
            params[name] = {"value": f"my-{name.replace('_', '-')}"}
    return {"event": event, "action": action, "params": params}

"""Knock's action types: their parameters, required fields, limits and execution order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .jsontext import compact_json


@dataclass(frozen=True)
class ActionType:
    name: str
    params: tuple[str, ...]
    required: frozenset[str]
    label: str

    @property
    def order(self) -> int:
        return EXECUTION_ORDER.index(self.name)


def _action(name: str, label: str, *params: str) -> ActionType:
    return ActionType(
        name=name,
        params=tuple(p.rstrip("*") for p in params),
        required=frozenset(p.rstrip("*") for p in params if p.endswith("*")),
        label=label,
    )


# Knock honours an Idempotency-Key on workflow triggers only; their keys are logged and kept.
KEYED_ACTIONS = frozenset({"workflows_trigger"})
# A user's attributes that Knock names; every other param of users_identify is a custom property.
USER_FIELDS = ("name", "email", "phone_number", "avatar", "locale", "timezone")

# Knock's documented order; workflows_cancel (offered by Knock's UI, absent from its list) runs last.
EXECUTION_ORDER = (
    "users_identify",
    "users_delete",
    "objects_set",
    "objects_delete",
    "tenants_set",
    "tenants_delete",
    "objects_subscribe",
    "objects_unsubscribe",
    "audiences_add_member",
    "audiences_remove_member",
    "workflows_trigger",
    "workflows_cancel",
)

ACTION_TYPES: dict[str, ActionType] = {
    a.name: a
    for a in (
        _action("users_identify", "Identify user", "id*", *USER_FIELDS, "properties"),
        _action("users_delete", "Delete user", "id*"),
        _action(
            "objects_set", "Set object", "collection*", "id*", "name", "locale", "timezone", "properties"
        ),
        _action("objects_delete", "Delete object", "collection*", "id*"),
        _action("tenants_set", "Set tenant", "id*", "name", "properties"),
        _action("tenants_delete", "Delete tenant", "id*"),
        _action("objects_subscribe", "Subscribe to object", "collection*", "id*", "recipients*"),
        _action("objects_unsubscribe", "Unsubscribe from object", "collection*", "id*", "recipients*"),
        _action("audiences_add_member", "Add audience member", "key*", "users*", "tenant", "create_audience"),
        _action("audiences_remove_member", "Remove audience member", "key*", "users*", "tenant"),
        _action(
            "workflows_trigger",
            "Trigger workflow",
            "key*",
            "recipients*",
            "actor",
            "data",
            "tenant",
            "cancellation_key",
        ),
        _action("workflows_cancel", "Cancel workflow", "key*", "cancellation_key*", "recipients"),
    )
}
assert tuple(sorted(ACTION_TYPES, key=EXECUTION_ORDER.index)) == EXECUTION_ORDER

MAX_USER_ID = 256
MAX_RECIPIENTS = 1000
MAX_PROPERTIES_BYTES = 256 * 1024
MAX_DATA_BYTES = 10 * 1024 * 1024

# Parameters that name a user, and parameters that list recipients (a single string is wrapped).
USER_ID_PARAMS = {"users_identify": ("id",), "users_delete": ("id",)}
LIST_PARAMS = {
    "objects_subscribe": "recipients",
    "objects_unsubscribe": "recipients",
    "audiences_add_member": "users",
    "audiences_remove_member": "users",
    "workflows_trigger": "recipients",
    "workflows_cancel": "recipients",
}
OBJECT_PARAMS = {"properties": MAX_PROPERTIES_BYTES, "data": MAX_DATA_BYTES}
# A trigger's tenant may be an id or a tenant object (`{"id": …, "name": …}`), set on the way.
OBJECT_TENANT_ACTIONS = frozenset({"workflows_trigger"})
BOOLEAN_PARAMS = {"create_audience"}
STRING_PARAMS = {"id", "collection", "key", "cancellation_key", *USER_FIELDS, "tenant"}


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON: what Knock's size limits count."""
    return len(compact_json(value))


def _scalar_text(value: Any) -> str | None:
    """Strings pass; numbers become text (Clay ids are often numeric); others are refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return None


def normalize(action: str, payload: dict[str, Any], size_hint: int | None = None) -> list[str]:
    """Apply Knock's rules to a resolved payload in place; return the problems found.

    `size_hint` is an upper bound on the JSON size of any value taken from the event
    (several times the raw body length); values under it skip the exact measurement.
    """
    problems: list[str] = []
    for name, value in payload.items():
        if name == "tenant" and action in OBJECT_TENANT_ACTIONS and isinstance(value, dict):
            if not isinstance(value.get("id"), str) or not value["id"]:
                problems.append("param `tenant`: a tenant object needs a text `id`")
            continue
        if name in BOOLEAN_PARAMS and not isinstance(value, bool):
            flag = {"true": True, "false": False}.get(str(value).strip().lower())
            if flag is None:
                problems.append(f"param `{name}`: expected true or false, got {json.dumps(value)}")
            else:
                payload[name] = flag
            continue
        if type(value) is not str and name in STRING_PARAMS:
            text = _scalar_text(value)
            if text is None:
                problems.append(f"param `{name}`: expected text, got {type(value).__name__}")
                continue
            payload[name] = text
    for name in USER_ID_PARAMS.get(action, ()):
        user_id = payload.get(name)
        if isinstance(user_id, str) and (len(user_id) > MAX_USER_ID or "/" in user_id or "#" in user_id):
            if len(user_id) > MAX_USER_ID:
                problems.append(
                    f"param `{name}`: user id is {len(user_id)} characters; Knock allows {MAX_USER_ID}"
                )
            if "/" in user_id or "#" in user_id:
                problems.append(
                    f"param `{name}`: user id {json.dumps(user_id)} contains `/` or `#`, "
                    "which Knock does not allow in user ids"
                )
    list_param = LIST_PARAMS.get(action)
    if list_param and list_param in payload:
        _check_recipients(list_param, payload, problems)
    for name, limit in OBJECT_PARAMS.items():
        if name not in payload:
            continue
        value = payload[name]
        if not isinstance(value, dict):
            problems.append(f"param `{name}`: expected an object, got {type(value).__name__}")
            continue
        if size_hint is None or size_hint > limit:
            size = json_size(value)
            if size > limit:
                problems.append(f"param `{name}`: {size:,} bytes; Knock allows {limit:,}")
    return problems


def _check_recipients(list_param: str, payload: dict[str, Any], problems: list[str]) -> None:
    value = payload[list_param]
    if isinstance(value, (str, dict)):
        value = payload[list_param] = [value]
    if not isinstance(value, list):
        problems.append(f"param `{list_param}`: expected a list of recipients, got {type(value).__name__}")
        return
    if len(value) > MAX_RECIPIENTS:
        problems.append(f"param `{list_param}`: {len(value)} recipients; Knock allows {MAX_RECIPIENTS}")
    for i, item in enumerate(value):
        if not (isinstance(item, dict) or (isinstance(item, str) and item)):
            problems.append(
                f"param `{list_param}`: item {i} is {json.dumps(item)}; "
                "a recipient is a user id or an object reference"
            )
            break

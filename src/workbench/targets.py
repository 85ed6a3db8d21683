"""What each action acts on (its *targets*) and a hash of what it sends there: the memory of a sync.

A backfill is a sync: per environment and target it remembers the hash of the payload last applied
successfully, and sends an action again only when its hash differs. A target is the thing Knock
keeps: a user id, an object `collection/id`, a tenant id, a subscription pair (object, recipient),
an audience member (audience, tenant, user), or, for a workflow trigger, the trigger of one row by
one mapping with one payload (a trigger runs once for those, never "again with the same data").
Opposite actions share their target (an identify and a delete of one user), so the last one
applied decides. Live rows and backfilled rows share the memory.

The memory is kept per target *as each row last applied it* (its key: the target and the row's
identity): exports often set one target from several rows (a company object from each of its
leads), each with its own payload, and a re-run of such an export must find each row's payload
unchanged, where one hash per target would hold only the last row's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .engine import content_hash, row_identity
from .jsontext import compact_json


def _key(*parts: Any) -> str:
    """A target as a fixed-size key: the SHA-256 of its parts' canonical JSON."""
    return hashlib.sha256(compact_json(parts, sort_keys=True)).hexdigest()


def _member(recipient: Any) -> Any:
    """A recipient or audience user as its identity: a user id, or an object reference."""
    if isinstance(recipient, dict):
        if "collection" in recipient:
            return [recipient.get("collection"), recipient.get("id")]
        return recipient.get("id")
    return recipient


def _one(kind: str, *fields: str) -> Callable[[str, dict, str | None, str], list[tuple[str, str]]]:
    def targets(action, payload, row, mapping):
        return [(_key(kind, *(payload.get(f) for f in fields)), content_hash([action, payload]))]

    return targets


def _pairs(kind: str, owner: tuple[str, ...], members: str):
    """One target per member (subscription pairs, audience members); the hash: the action and the
    member as given (an inline recipient's properties included)."""

    def targets(action, payload, row, mapping):
        whose = [payload.get(f) or "" for f in owner]
        return [
            (_key(kind, *whose, _member(member)), content_hash([action, member]))
            for member in payload.get(members) or ()
        ]

    return targets


def _trigger(action, payload, row, mapping):
    digest = content_hash(payload)
    return [(_key("workflow_run", row, mapping, digest), digest)]


_TARGETS = {
    "users_identify": _one("user", "id"),
    "users_delete": _one("user", "id"),
    "objects_set": _one("object", "collection", "id"),
    "objects_delete": _one("object", "collection", "id"),
    "tenants_set": _one("tenant", "id"),
    "tenants_delete": _one("tenant", "id"),
    "objects_subscribe": _pairs("subscription", ("collection", "id"), "recipients"),
    "objects_unsubscribe": _pairs("subscription", ("collection", "id"), "recipients"),
    "audiences_add_member": _pairs("audience_member", ("key", "tenant"), "users"),
    "audiences_remove_member": _pairs("audience_member", ("key", "tenant"), "users"),
    "workflows_trigger": _trigger,
    "workflows_cancel": _one("workflow_cancel", "key", "cancellation_key", "recipients"),
}


def action_targets(
    action: str, payload: dict[str, Any], row: str, mapping: str
) -> list[tuple[str, str, str]]:
    """(target, memory key, payload hash) for each thing `action` with `payload` acts on. `row`:
    the row's identity (see `row_of`), `mapping`: the mapping's key (part of a trigger's target).
    The memory key is the target as this row applies it."""
    return [
        (target, hashlib.sha256(f"{target}\n{row}".encode("utf-8", "surrogatepass")).hexdigest(), digest)
        for target, digest in _TARGETS[action](action, payload, row, mapping)
    ]


def row_of(source: str, environment: str, event_type: str, key: str | None, body: Any) -> str:
    """A row's identity, whether it arrived live or from an export: its idempotency key when the
    config gives one, else the hash of its body (see `engine.row_identity`, whose text this is:
    its first three parts, the same for every row of a run, are written once)."""
    key = key if key is not None else content_hash(body)
    if type(key) is not str:
        return row_identity(source, environment, event_type, key)
    return (
        _scope_text(source, environment, event_type)
        + compact_json(key).decode("utf-8", "surrogatepass")
        + "]"
    )


@lru_cache(maxsize=256)
def _scope_text(source: str, environment: str, event_type: str) -> str:
    """`row_identity`'s text up to its key: `[source, environment, event type, `."""
    return row_identity(source, environment, event_type, "")[: -len('""]')]

"""The `local` sink: a Knock-like recipient store in the event log's own database.

Users, objects and tenants are merged the way Knock merges them (properties deep-merged, a null
sets null); workflow triggers record one run per recipient. Bound to the connection that records
the outcome, its writes commit or roll back together with the action log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from ..actions import USER_FIELDS
from ..engine import ActionRequest, utcnow
from ..errors import TerminalSinkError, TransientSinkError
from ..store import Store, insert_ignoring_conflicts, local_objects, local_tenants, local_users
from ..store.schema import local_audience_members, local_subscriptions, local_workflow_runs

OBJECT_FIELDS = ("name", "locale", "timezone")
TENANT_FIELDS = ("name",)


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Knock's merge: nested objects merge key by key, anything else (lists, null) replaces."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def recipient_key(recipient: Any) -> str:
    """A user id as is; an object reference as its canonical JSON."""
    if isinstance(recipient, str):
        return recipient
    if isinstance(recipient, dict) and "collection" not in recipient and isinstance(recipient.get("id"), str):
        return recipient["id"]
    return json.dumps(recipient, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _attributes(payload: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Custom properties with the named parameters over them (a named parameter wins)."""
    properties = payload.get("properties") or {}
    named = {f: payload[f] for f in fields if f in payload}
    return {**{k: v for k, v in properties.items() if k != "id"}, **named}


# What a merge answers does not depend on what the store held before, so a receiver can answer
# it before the write is made (see `workbench.writebehind`).
MERGE_ACTIONS = frozenset({"users_identify", "objects_set", "tenants_set"})
_RUN_IDS = uuid.UUID("5b0c6f1e-8f5d-4c3e-9a53-1f7e0c2d4b6a")


def merge_result(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The local sink's result for a merge action (Knock answers with the record it keeps)."""
    if action == "objects_set":
        return {"collection": payload["collection"], "id": payload["id"]}
    return {"id": payload["id"]}


def run_id(key: str | None) -> str:
    """A trigger's workflow run id: derived from its Idempotency-Key, so the id is known before
    the run is written and a trigger sent again under its key gets the run it got before."""
    return str(uuid.uuid5(_RUN_IDS, key)) if key is not None else str(uuid.uuid4())


class LocalSink:
    """Applies actions to the local recipient store."""

    name = "local"
    # The service runs this sink inside the transaction that records the outcome.
    transactional = True
    bulk = False

    def __init__(self, store: Store, conn: Connection | None = None, clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.conn = conn
        self.clock = clock

    def bind(self, conn: Connection) -> LocalSink:
        """The same sink writing through `conn` (and its transaction)."""
        return LocalSink(self.store, conn, self.clock)

    @contextmanager
    def _conn(self):
        if self.conn is not None:
            yield self.conn
        else:
            with self.store.engine.begin() as conn:
                yield conn

    def apply(self, request: ActionRequest) -> Any:
        handler = getattr(self, f"_{request.action}", None)
        if handler is None:
            raise TerminalSinkError(f"the local sink does not support `{request.action}`")
        try:
            with self._conn() as conn:
                return handler(conn, request.payload, request)
        except OperationalError as exc:
            raise TransientSinkError(f"local store busy or unavailable: {exc.orig}") from None

    # -- records ---------------------------------------------------------------------------

    def _merge_record(self, conn: Connection, table, keys: dict, changes: dict) -> bool:
        """Deep-merge `changes` into the record's data; True when the record is new."""
        return self.store.merge_record(conn, table, keys, changes, deep_merge, self.clock())

    def _identify(self, conn: Connection, user: Any) -> None:
        """Inline identification: a recipient or actor given as an object is upserted."""
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            return
        data = {k: v for k, v in user.items() if k not in ("id", "collection")}
        if "collection" in user:
            self._merge_record(
                conn, local_objects, {"collection": user["collection"], "id": user["id"]}, data
            )
        else:
            self._merge_record(conn, local_users, {"id": user["id"]}, data)

    def _set(self, conn, table, fields, payload, request):
        """Merge a record (keyed as its table is: `id`, or `collection` and `id`)."""
        keys = {c.name: payload[c.name] for c in table.primary_key.columns}
        self._merge_record(conn, table, keys, _attributes(payload, fields))
        return merge_result(request.action, payload)

    def _delete(self, conn, table, payload):
        keys = {c.name: payload[c.name] for c in table.primary_key.columns}
        deleted = conn.execute(delete(table).where(*(table.c[k] == v for k, v in keys.items()))).rowcount
        return {**keys, "deleted": bool(deleted)}

    def _users_identify(self, conn, payload, request):
        return self._set(conn, local_users, USER_FIELDS, payload, request)

    def _users_delete(self, conn, payload, request):
        return self._delete(conn, local_users, payload)

    def _objects_set(self, conn, payload, request):
        return self._set(conn, local_objects, OBJECT_FIELDS, payload, request)

    def _objects_delete(self, conn, payload, request):
        return self._delete(conn, local_objects, payload)

    def _tenants_set(self, conn, payload, request):
        return self._set(conn, local_tenants, TENANT_FIELDS, payload, request)

    def _tenants_delete(self, conn, payload, request):
        return self._delete(conn, local_tenants, payload)

    # -- memberships -----------------------------------------------------------------------

    def _add_members(self, conn, table, scope: dict, column: str, members) -> int:
        """Each member (identified first when given inline) added under `scope`; returns how
        many were not there yet."""
        now, added = self.clock(), 0
        keys = tuple(c.name for c in table.primary_key.columns)
        for member in members:
            self._identify(conn, member)
            row = {**scope, column: recipient_key(member), "created_at": now}
            added += insert_ignoring_conflicts(conn, table, row, keys)
        return added

    def _remove_members(self, conn, table, scope: dict, column: str, members) -> int:
        where = [table.c[name] == value for name, value in scope.items()]
        where.append(table.c[column].in_([recipient_key(m) for m in members]))
        return conn.execute(delete(table).where(*where)).rowcount

    def _objects_subscribe(self, conn, payload, request):
        scope = {"collection": payload["collection"], "object_id": payload["id"]}
        added = self._add_members(conn, local_subscriptions, scope, "recipient", payload["recipients"])
        return {"collection": payload["collection"], "id": payload["id"], "subscribed": added}

    def _objects_unsubscribe(self, conn, payload, request):
        scope = {"collection": payload["collection"], "object_id": payload["id"]}
        removed = self._remove_members(conn, local_subscriptions, scope, "recipient", payload["recipients"])
        return {"collection": payload["collection"], "id": payload["id"], "unsubscribed": removed}

    def _audiences_add_member(self, conn, payload, request):
        scope = {"audience_key": payload["key"], "tenant": payload.get("tenant") or ""}
        added = self._add_members(conn, local_audience_members, scope, "user_id", payload["users"])
        return {"key": payload["key"], "added": added}

    def _audiences_remove_member(self, conn, payload, request):
        scope = {"audience_key": payload["key"], "tenant": payload.get("tenant") or ""}
        removed = self._remove_members(conn, local_audience_members, scope, "user_id", payload["users"])
        return {"key": payload["key"], "removed": removed}

    # -- workflows -------------------------------------------------------------------------

    def _workflows_trigger(self, conn, payload, request):
        key = request.idempotency_key
        if key is not None:
            earlier = conn.execute(
                select(local_workflow_runs.c.trigger_id).where(local_workflow_runs.c.idempotency_key == key)
            ).first()
            if earlier is not None:  # a retried trigger: Knock would answer with the first run
                return {"workflow_run_id": earlier.trigger_id}
        now, trigger_id = self.clock(), run_id(key)
        actor = payload.get("actor")
        self._identify(conn, actor)
        rows = []
        for recipient in payload["recipients"]:
            self._identify(conn, recipient)
            rows.append(
                {
                    "trigger_id": trigger_id,
                    "idempotency_key": key,
                    "workflow": payload["key"],
                    "recipient": recipient_key(recipient),
                    "actor": actor,
                    "data": payload.get("data"),
                    "tenant": payload.get("tenant"),
                    "cancellation_key": payload.get("cancellation_key"),
                    "status": "triggered",
                    "event_id": request.event_id,
                    "created_at": now,
                }
            )
        conn.execute(local_workflow_runs.insert(), rows)
        return {"workflow_run_id": trigger_id}

    def _workflows_cancel(self, conn, payload, request):
        where = [
            local_workflow_runs.c.workflow == payload["key"],
            local_workflow_runs.c.cancellation_key == payload["cancellation_key"],
            local_workflow_runs.c.status == "triggered",
        ]
        if payload.get("recipients"):
            where.append(
                local_workflow_runs.c.recipient.in_([recipient_key(r) for r in payload["recipients"]])
            )
        cancelled = conn.execute(
            update(local_workflow_runs).where(*where).values(status="cancelled", cancelled_at=self.clock())
        ).rowcount
        return {
            "key": payload["key"],
            "cancellation_key": payload["cancellation_key"],
            "cancelled": cancelled,
        }

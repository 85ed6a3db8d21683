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

from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from ..actions import USER_FIELDS
from ..engine import ActionRequest, utcnow
from ..errors import TerminalSinkError, TransientSinkError
from ..store import (
    Store,
    insert_ignoring_conflicts,
    local_audience_members,
    local_objects,
    local_subscriptions,
    local_tenants,
    local_users,
    local_workflow_runs,
)

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

    def _users_identify(self, conn, payload, request):
        user_id = payload["id"]
        self._merge_record(conn, local_users, {"id": user_id}, _attributes(payload, USER_FIELDS))
        return merge_result(request.action, payload)

    def _users_delete(self, conn, payload, request):
        deleted = conn.execute(delete(local_users).where(local_users.c.id == payload["id"])).rowcount
        return {"id": payload["id"], "deleted": bool(deleted)}

    def _objects_set(self, conn, payload, request):
        collection, object_id = payload["collection"], payload["id"]
        self._merge_record(
            conn,
            local_objects,
            {"collection": collection, "id": object_id},
            _attributes(payload, OBJECT_FIELDS),
        )
        return merge_result(request.action, payload)

    def _objects_delete(self, conn, payload, request):
        collection, object_id = payload["collection"], payload["id"]
        where = and_(local_objects.c.collection == collection, local_objects.c.id == object_id)
        deleted = conn.execute(delete(local_objects).where(where)).rowcount
        return {"collection": collection, "id": object_id, "deleted": bool(deleted)}

    def _tenants_set(self, conn, payload, request):
        tenant_id = payload["id"]
        self._merge_record(conn, local_tenants, {"id": tenant_id}, _attributes(payload, TENANT_FIELDS))
        return merge_result(request.action, payload)

    def _tenants_delete(self, conn, payload, request):
        deleted = conn.execute(delete(local_tenants).where(local_tenants.c.id == payload["id"])).rowcount
        return {"id": payload["id"], "deleted": bool(deleted)}

    # -- memberships -----------------------------------------------------------------------

    def _objects_subscribe(self, conn, payload, request):
        now, added = self.clock(), 0
        for recipient in payload["recipients"]:
            self._identify(conn, recipient)
            added += insert_ignoring_conflicts(
                conn,
                local_subscriptions,
                {
                    "collection": payload["collection"],
                    "object_id": payload["id"],
                    "recipient": recipient_key(recipient),
                    "created_at": now,
                },
                ("collection", "object_id", "recipient"),
            )
        return {"collection": payload["collection"], "id": payload["id"], "subscribed": added}

    def _objects_unsubscribe(self, conn, payload, request):
        keys = [recipient_key(r) for r in payload["recipients"]]
        removed = conn.execute(
            delete(local_subscriptions).where(
                local_subscriptions.c.collection == payload["collection"],
                local_subscriptions.c.object_id == payload["id"],
                local_subscriptions.c.recipient.in_(keys),
            )
        ).rowcount
        return {"collection": payload["collection"], "id": payload["id"], "unsubscribed": removed}

    def _audiences_add_member(self, conn, payload, request):
        now, added = self.clock(), 0
        for user in payload["users"]:
            self._identify(conn, user)
            added += insert_ignoring_conflicts(
                conn,
                local_audience_members,
                {
                    "audience_key": payload["key"],
                    "user_id": recipient_key(user),
                    "tenant": payload.get("tenant") or "",
                    "created_at": now,
                },
                ("audience_key", "user_id", "tenant"),
            )
        return {"key": payload["key"], "added": added}

    def _audiences_remove_member(self, conn, payload, request):
        removed = conn.execute(
            delete(local_audience_members).where(
                local_audience_members.c.audience_key == payload["key"],
                local_audience_members.c.user_id.in_([recipient_key(u) for u in payload["users"]]),
                local_audience_members.c.tenant == (payload.get("tenant") or ""),
            )
        ).rowcount
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

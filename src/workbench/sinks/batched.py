"""The local sink for one batch (a backfill's, write-behind's): users merged in memory, written
with two statements.

A backfill is mostly `users_identify`, and one SELECT plus one INSERT or UPDATE per row is most
of its time. Here the batch's users are read with one query, merged exactly as `LocalSink`
merges them (`deep_merge`, named parameters over properties) and written back with one
multi-row INSERT and one multi-row UPDATE, in the batch's transaction. Any other action goes to
the bound `LocalSink` as it is, after the pending users are written, so it sees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from ..actions import USER_FIELDS
from ..engine import ActionRequest
from ..store import local_users
from ..store.db import in_chunks
from .local import LocalSink, _attributes, deep_merge, merge_result

# Built once: a statement made per chunk would hold its chunk in reference cycles until the
# collector frees them, which a backfill lets run rarely (see `backfill.runner._fewer_collections`).
_USERS = select(local_users.c.id, local_users.c.data).where(
    local_users.c.id.in_(bindparam("ids", expanding=True))
)
_UPDATE = (
    update(local_users)
    .where(local_users.c.id == bindparam("user_id"))
    .values(data=bindparam("data"), updated_at=bindparam("now"))
)


class BatchedUsers:
    """A sink over a `LocalSink` bound to the batch's connection; call `flush()` before commit."""

    name = "local"
    transactional = True
    bulk = False

    def __init__(self, local: LocalSink, conn: Connection):
        self.local = local
        self.conn = conn
        self.known: dict[str, dict | None] = {}  # id → stored data (None: no such user yet)
        self.dirty: dict[str, bool] = {}  # id → whether the user existed before this batch

    def prefetch(self, ids: Iterable[str]) -> None:
        """Read the users these ids name, in chunks that stay under SQL parameter limits."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self.known]
        for chunk in in_chunks(wanted):
            found = dict(self.conn.execute(_USERS, {"ids": chunk}).all())
            for user_id in chunk:
                self.known[user_id] = found.get(user_id)

    def apply(self, request: ActionRequest) -> Any:
        if request.action != "users_identify":
            self.flush()
            self.known.clear()  # other actions may identify users inline
            return self.local.apply(request)
        payload = request.payload
        user_id = payload["id"]
        if user_id not in self.known:
            self.prefetch([user_id])
        before = self.known[user_id]
        created = before is None
        self.known[user_id] = deep_merge(before or {}, _attributes(payload, USER_FIELDS))
        self.dirty.setdefault(user_id, not created)
        return merge_result(request.action, payload)

    def flush(self) -> None:
        if not self.dirty:
            return
        now = self.local.clock()
        new = [
            {"id": i, "data": self.known[i], "created_at": now, "updated_at": now}
            for i, e in self.dirty.items()
            if not e
        ]
        old = [{"user_id": i, "data": self.known[i], "now": now} for i, e in self.dirty.items() if e]
        self.local.store.insert_records(self.conn, local_users, new)
        if old:
            self.conn.execute(_UPDATE, old)
        self.dirty.clear()

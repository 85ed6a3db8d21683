"""Idempotency keys: an atomic reservation on a unique constraint; only successes are remembered."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from ..engine import ActionResult
from ..errors import StoreUnavailable
from .db import BUSY_TIMEOUT_MS, insert_ignoring_conflicts
from .fast import Prepared, bind_processor
from .schema import actions, events
from .schema import idempotency_keys as keys


def _claim_statement(insert, returning: bool = True) -> Prepared:
    """INSERT the key, or take over its expired record; RETURNING says whether either happened."""
    statement = insert(keys).values(
        {c.name: bindparam(c.name, type_=c.type) for c in keys.c if c.name != "id"}
    )
    taken = ("state", "window_seconds", "created_at", "expires_at", "event_id")
    upsert = statement.on_conflict_do_update(
        index_elements=["source", "environment", "event_type", "key"],
        set_={name: statement.excluded[name] for name in taken},
        where=keys.c.expires_at <= bindparam("now", type_=keys.c.expires_at.type),
    )
    return Prepared(upsert.returning(keys.c.event_id) if returning else upsert)


_CLAIM = {"sqlite": _claim_statement(sqlite_insert), "postgresql": _claim_statement(postgresql_insert)}
_HOLD = {
    "sqlite": _claim_statement(sqlite_insert, returning=False),
    "postgresql": _claim_statement(postgresql_insert, returning=False),
}
_HOLDER = Prepared(
    select(keys.c.event_id).where(
        and_(*(keys.c[name] == bindparam(name) for name in ("source", "environment", "event_type", "key")))
    )
)

_LATEST_FAILED = Prepared(
    select(events.c.id)
    .where(
        and_(
            events.c.source == bindparam("source"),
            events.c.environment == bindparam("environment"),
            events.c.status == bindparam("status"),
            events.c.received_at >= bindparam("since", type_=events.c.received_at.type),
            events.c.event == bindparam("event_type"),
            events.c.idempotency_key == bindparam("key"),
        )
    )
    .order_by(events.c.received_at.desc(), events.c.id.desc())
)

_SCOPE = ("source", "environment", "event_type", "key")
# Whether another execution holds the key, and whether an attempt with it failed within the window.
_LOOK = Prepared(
    select(
        exists()
        .where(
            *(keys.c[name] == bindparam(name) for name in _SCOPE),
            keys.c.expires_at > bindparam("now", type_=keys.c.expires_at.type),
        )
        .label("held"),
        exists(_LATEST_FAILED.statement.with_only_columns(events.c.id).order_by(None)).label("failed"),
    )
)


def _claim_values(claim: tuple[tuple[str, str, str], str, datetime, float, str]) -> dict:
    (source, environment, event_type), key, now, window_seconds, event_id = claim
    return {
        "source": source,
        "environment": environment,
        "event_type": event_type,
        "key": key,
        "state": "done",
        "window_seconds": float(window_seconds),
        "created_at": now,
        "expires_at": now + timedelta(seconds=window_seconds),
        "event_id": event_id,
        "now": now,
    }


def _look_values(scope: tuple[str, str, str], key: str, now: datetime, window_seconds: float) -> dict:
    source, environment, event_type = scope
    return {
        "source": source,
        "environment": environment,
        "event_type": event_type,
        "key": key,
        "now": now,
        "since": now - timedelta(seconds=window_seconds),
        "status": "failed",
    }


class Lookout:
    """`StoreIdempotency.look` for the write-behind receiver's requests on a SQLite file: on a
    connection of its own, outside any transaction (one implicit read, no BEGIN and ROLLBACK,
    which cost more than the read). Thread-safe: one read at a time."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        compiled = _LOOK.statement.compile(dialect=engine.dialect)
        self._sql = compiled.string
        self._names = list(compiled.positiontup)
        self._processors = {n: bind_processor(b.type, engine.dialect) for n, b in compiled.binds.items()}

    def look(
        self, scope: tuple[str, str, str], key: str, now: datetime, window_seconds: float
    ) -> tuple[bool, bool]:
        values = _look_values(scope, key, now, window_seconds)
        params = []
        for name in self._names:
            process = self._processors[name]
            params.append(values[name] if process is None else process(values[name]))
        with self._lock:
            if self._conn is None or self._pid != os.getpid():
                self._conn = sqlite3.connect(
                    self.engine.url.database, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
                )
                self._conn.isolation_level = None
                self._pid = os.getpid()
            try:
                ((held, failed),) = self._conn.execute(self._sql, params).fetchall()
            except sqlite3.Error as exc:
                self.close()
                raise StoreUnavailable(f"cannot read the idempotency keys: {exc}") from exc
        return bool(held), bool(failed)

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


def logged_result(action: Any) -> ActionResult:
    """A logged action (a log entry's dict, or an `actions` row's mapping) as the engine's result."""
    return ActionResult(
        action["action"],
        action["status"],
        action["mapping"],
        params=action["params"],
        payload=action["payload"],
        result=action["result"],
        error=action["error"],
        request_key=action["request_key"],
    )


# A reservation is an execution in progress; a process that died holding one loses it after this.
RESERVATION_LEASE = timedelta(minutes=15)


def _match(scope: tuple[str, str, str], key: str):
    source, environment, event_type = scope
    return and_(
        keys.c.source == source,
        keys.c.environment == environment,
        keys.c.event_type == event_type,
        keys.c.key == key,
    )


class StoreIdempotency:
    """The engine's `IdempotencyPort` over the store.

    With `conn`, every step runs inside that connection's transaction (the local sink's unit of
    work); without it, each step is a transaction of its own, committed before it returns so other
    processes see it at once.
    """

    def __init__(self, engine: Engine, conn: Connection | None = None):
        self.engine = engine
        self.conn = conn

    def _run(self, work):
        if self.conn is not None:
            if self.conn.invalidated:
                # The database went away mid-transaction: the whole unit of work is rolled back,
                # reservation included, so there is nothing left to release.
                raise StoreUnavailable("the event-log database connection was lost; try again shortly")
            return work(self.conn)
        with self.engine.begin() as conn:
            return work(conn)

    def reserve(self, scope: tuple[str, str, str], key: str, now: datetime, window_seconds: float) -> bool:
        source, environment, event_type = scope
        expires = now + min(RESERVATION_LEASE, timedelta(seconds=window_seconds))

        def work(conn: Connection) -> bool:
            # Expired records (past the window, or a reservation whose process died) are taken over.
            conn.execute(delete(keys).where(_match(scope, key), keys.c.expires_at <= now))
            return insert_ignoring_conflicts(
                conn,
                keys,
                {
                    "source": source,
                    "environment": environment,
                    "event_type": event_type,
                    "key": key,
                    "state": "reserved",
                    "window_seconds": float(window_seconds),
                    "created_at": now,
                    "expires_at": expires,
                },
                ("source", "environment", "event_type", "key"),
            )

        return self._run(work)

    def earlier(
        self, scope: tuple[str, str, str], key: str, now: datetime, window_seconds: float
    ) -> dict[str, ActionResult]:
        """Per mapping, the actions of the latest event logged with `key` in its scope within the
        window that failed (a failure releases the key, so a row sent again runs); {} if none."""
        source, environment, event_type = scope
        values = {
            "source": source,
            "environment": environment,
            "event_type": event_type,
            "key": key,
            "since": now - timedelta(seconds=window_seconds),
            "status": "failed",
        }

        def work(conn: Connection) -> dict[str, ActionResult]:
            found = _LATEST_FAILED.fetchall(conn, values)
            if not found:
                return {}
            rows = conn.execute(
                select(actions).where(actions.c.event_id == found[0][0]).order_by(actions.c.position)
            )
            return {row.mapping: logged_result(row._mapping) for row in rows}

        return self._run(work)

    def look(
        self, scope: tuple[str, str, str], key: str, now: datetime, window_seconds: float
    ) -> tuple[bool, bool]:
        """(whether an execution holds `key` now, whether an attempt with it failed within the
        window) in one read (the write-behind receiver's, before it claims the key elsewhere)."""
        values = _look_values(scope, key, now, window_seconds)
        ((held, failed),) = self._run(lambda conn: _LOOK.fetchall(conn, values))
        return bool(held), bool(failed)

    def claim(
        self, scope: tuple[str, str, str], key: str, now: datetime, window_seconds: float, event_id: str
    ) -> bool:
        """Remember `key` as executed by `event_id`, whose success is already settled (the
        write-behind receiver's writer); True when the key is this event's (claimed now, or by
        this same event before its process died), False when another execution holds it."""
        return self.claim_many([(scope, key, now, window_seconds, event_id)])[0]

    def claim_many(self, claims: list[tuple[tuple[str, str, str], str, datetime, float, str]]) -> list[bool]:
        """`claim` for several events in one transaction (in order: of two claims of one key, the
        first wins). Each is one upsert that takes the key when it is free or expired, run on the
        driver's cursor; a second look only when it is taken."""

        def work(conn: Connection) -> list[bool]:
            upsert = _CLAIM[conn.dialect.name]
            out = []
            for values in map(_claim_values, claims):
                out.append(
                    bool(upsert.fetchall(conn, values))
                    or _HOLDER.fetchall(conn, values) == [(values["event_id"],)]
                )
            return out

        return self._run(work)

    def hold_many(self, claims: list[tuple[tuple[str, str, str], str, datetime, float, str]]) -> None:
        """Remember keys that were given to their events elsewhere (the write-behind receiver's
        claim arbiter), in the writer's transaction: `claim_many`'s upserts in one executemany,
        which leaves a key that another execution holds as it is."""
        self._run(lambda conn: _HOLD[conn.dialect.name].executemany(conn, map(_claim_values, claims)))

    def complete(self, scope: tuple[str, str, str], key: str, now: datetime) -> None:
        def work(conn: Connection) -> None:
            row = conn.execute(keys.select().where(_match(scope, key))).first()
            if row is None:
                return
            conn.execute(
                update(keys)
                .where(keys.c.id == row.id)
                .values(state="done", expires_at=now + timedelta(seconds=row.window_seconds))
            )

        self._run(work)

    def release(self, scope: tuple[str, str, str], key: str) -> None:
        self._run(
            lambda conn: conn.execute(delete(keys).where(_match(scope, key), keys.c.state == "reserved"))
        )

    def forget(self, scope: tuple[str, str, str], key: str) -> None:
        """Drop the key whatever its state: its execution ended up failing after all."""
        self._run(lambda conn: conn.execute(delete(keys).where(_match(scope, key))))

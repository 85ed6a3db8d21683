"""Idempotency keys: an atomic reservation on a unique constraint; only successes are remembered."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, update
from sqlalchemy.engine import Connection, Engine

from ..errors import StoreUnavailable
from .db import insert_ignoring_conflicts
from .schema import idempotency_keys as keys

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

"""Work on the log beside the requests: handing due retries out, finding stalled events, retention."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from ..engine import utcnow
from ..retry import RetryPolicy
from .schema import actions, events, idempotency_keys


class Upkeep:
    """The log's upkeep, which a `Store` holds and answers `claim_due`, `claim_stalled` and `prune`
    with: it writes through the store's `transaction()` and leases by its `retry` policy."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Connection]], retry: RetryPolicy):
        self.transaction = transaction
        self.retry = retry

    def _claim(self, candidates, take) -> list[str]:
        """The event ids `candidates` (a SELECT of `events.id`) finds, locked with SKIP LOCKED, for
        which `take(event_id)` (an UPDATE that re-checks the condition: another process may have
        claimed the event since the SELECT began) changes a row, all in one transaction."""
        with self.transaction() as c:
            found = list(c.execute(candidates.with_for_update(skip_locked=True)).scalars())
            return [event_id for event_id in found if c.execute(take(event_id)).rowcount]

    def claim_due(self, now: datetime | None = None, limit: int = 100) -> list[str]:
        """Events with queued actions whose next attempt is due, claimed for one lease.

        Claiming pushes the actions' next attempt past the lease in the same transaction, so
        several processes retrying at once never pick the same event. On PostgreSQL the event
        rows are locked with SKIP LOCKED, so a process passes over the events another one is
        claiming instead of waiting for it; SQLite's write lock already serialises claims.
        """
        now = now or utcnow()
        lease_end = now + timedelta(seconds=self.retry.lease_seconds)
        due = (actions.c.status == "queued", actions.c.next_attempt_at <= now)
        return self._claim(
            select(events.c.id)
            .where(events.c.id.in_(select(actions.c.event_id).where(*due)))
            .order_by(events.c.received_at, events.c.id)
            .limit(limit),
            lambda event_id: (
                update(actions).where(actions.c.event_id == event_id, *due).values(next_attempt_at=lease_end)
            ),
        )

    def claim_stalled(
        self, older_than: timedelta, now: datetime | None = None, limit: int = 100
    ) -> list[str]:
        """Events still `received` long after arrival (their process died mid-way), claimed for a replay."""
        now = now or utcnow()
        stalled = (events.c.status == "received", events.c.updated_at <= now - older_than)
        return self._claim(
            select(events.c.id).where(*stalled).order_by(events.c.received_at).limit(limit),
            lambda event_id: update(events).where(events.c.id == event_id, *stalled).values(updated_at=now),
        )

    def prune(self, older_than_days: float = 30, now: datetime | None = None) -> int:
        """Delete events received more than `older_than_days` ago (with their actions) and expired
        idempotency keys; returns the number of events deleted."""
        now = now or utcnow()
        cutoff = now - timedelta(days=older_than_days)
        old = select(events.c.id).where(events.c.received_at < cutoff)
        with self.transaction() as c:
            c.execute(delete(actions).where(actions.c.event_id.in_(old)))
            deleted = c.execute(delete(events).where(events.c.received_at < cutoff)).rowcount
            c.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))
        return deleted

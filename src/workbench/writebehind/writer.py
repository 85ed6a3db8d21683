"""The write-behind's writer: a thread that logs the answered events of the last `pause` seconds
in one transaction, and lets readers wait until what was answered is logged (see the package)."""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DBAPIError, OperationalError

from ..engine import ActionRequest, Engine, Outcome, SourceEvent
from ..errors import StoreUnavailable
from ..sinks.batched import BatchedUsers
from ..store import journal
from ..store.journal import Journal, Segment

log = logging.getLogger("workbench.writebehind")

MAX_BATCH = 1000
SETTLE_TIMEOUT = 10.0
SWEEP_SECONDS = 60.0  # how often the writer forgets expired claims


@dataclass(slots=True)
class Item:
    """An answered event queued for the writer: what it logs, and where its journal entry ends."""

    event: SourceEvent
    source: str
    environment: str
    outcome: Outcome
    requests: list[ActionRequest]
    # Where its journal entry ends in this process's journal (None: recovered from another's).
    segment: Segment | None = None
    end: int = 0
    size: int = 0  # bytes of its body
    # With idempotency: the key the event claims in its scope, and the engine that planned it
    # (which says what a duplicate answers).
    key: str | None = None
    scope: tuple[str, str, str] | None = None
    window: float = 0.0
    engine: Engine | None = None
    # Whether it holds the key (True), is a duplicate (False), or is decided by the writer (None).
    claimed: bool | None = None


class Writer:
    """`WriteBehind`'s writer thread and its readers' waits. It reads the `WriteBehind`'s queue
    and counters (under `_cond`), its `store`, `service`, `_local` sink, `_arbiter`, `folder`
    and `_answered_claim` (the request path's claim, for an event the writer decides)."""

    def _open(self) -> Journal:
        """This process's journal and writer, made on first use (and again after a fork)."""
        if self._journal is None or self._journal.pid != os.getpid():
            self._journal = Journal(self.folder)
            self._queue, self._accepted, self._written, self._pending_bytes = [], 0, 0, 0
            self._thread = threading.Thread(target=self._run, name="workbench-writer", daemon=True)
            self._thread.start()
            atexit.register(self.close)
        return self._journal

    def _run(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
            if not (self._hurry or self._stopping):
                self._wake.wait(self.pause)  # gather more; a reader or close() cuts it short
            with self._cond:
                self._wake.clear()
                batch = self._queue[:MAX_BATCH]
            try:
                self._write(batch)
            except (StoreUnavailable, OperationalError) as exc:
                # The database is away or locked for long: the batch stays queued (and journaled).
                self._failing = str(getattr(exc, "orig", exc))
                log.warning("cannot log %d answered events yet, retrying: %s", len(batch), self._failing)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if self._stopping and backoff >= 5.0:
                    self._give_up()
                    return
                continue
            except Exception:
                log.exception("logging a batch of %d events failed; logging them one by one", len(batch))
                for item in batch:
                    self._write_alone(item)
            self._failing, backoff = None, 0.05
            self._sweep()
            with self._cond:
                del self._queue[: len(batch)]
                self._written += len(batch)
                self._pending_bytes -= sum(i.size for i in batch)
                if not self._stuck and self._journal is not None:
                    ends = {id(i.segment): (i.segment, i.end) for i in batch if i.segment is not None}
                    for segment, end in ends.values():  # in append order: dicts keep it
                        self._journal.applied(segment, end)
                self._cond.notify_all()

    def _write(self, items: list[Item]) -> None:
        """Log events with their actions and make the local sink's writes, in one transaction."""
        now = self.service.clock()
        with self.store.engine.connect() as conn:
            try:
                self._log(conn, items, now)
            except BaseException:
                conn.rollback()
                raise
            _commit(conn)

    def _log(self, conn, items: list[Item], now) -> None:
        """`_write`'s statements, in `conn`'s transaction."""
        # An event with a key logs as processed only if it holds the key, as its request
        # answered. One whose request has not (yet) decided, could not, or waits for this, or
        # one recovered from a dead process's journal, is decided here, as its request would
        # have been (claiming again by the same event finds its own claim). The keys held are
        # written with their events.
        port = self.store.idempotency(conn)
        keyed = [i for i in items if i.key is not None]
        decided_here = set()
        for i in keyed:
            if i.claimed is None:
                decision = self._decide(i, port)
                with self._cond:
                    if i.claimed is None:
                        i.claimed = decision
                        decided_here.add(id(i))
        held = [
            (i.scope, i.key, i.event.received_at, i.window, i.event.id)
            for i in keyed
            if i.claimed and id(i) not in decided_here
        ]
        if held:
            port.hold_many(held)
        decided = [
            (i, i.outcome if i.key is None or i.claimed else i.engine.duplicate(i.outcome, i.key))
            for i in items
        ]
        requests = [r for i, outcome in decided if outcome is i.outcome for r in i.requests]
        users = BatchedUsers(self._local.bind(conn), conn)
        users.prefetch(r.payload["id"] for r in requests if r.action == "users_identify")
        for request in requests:
            users.apply(request)
        users.flush()
        self.store.record_processed(
            conn, [(i.event, i.source, i.environment, outcome) for i, outcome in decided], now
        )

    def _decide(self, item: Item, port) -> bool:
        """Whether an undecided event holds its key: a claim another request answered from makes
        it a duplicate; otherwise the event log decides (in the writer's transaction)."""
        try:
            holder = self._answered_claim(item)
        except (sqlite3.Error, OSError) as exc:
            log.warning("the claim arbiter failed; the event log alone decides %s: %s", item.event.id, exc)
            holder = None
        if holder is not None and holder.answered:
            return False
        return port.claim(item.scope, item.key, item.event.received_at, item.window, item.event.id)

    def _sweep(self) -> None:
        """Now and then, forget the expired claims of the arbiter."""
        now = time.monotonic()
        if now - self._swept < SWEEP_SECONDS:
            return
        self._swept = now
        try:
            self._arbiter.sweep(time.time())
        except (sqlite3.Error, OSError) as exc:
            log.warning("cannot forget expired claims yet: %s", exc)

    def _write_alone(self, item: Item) -> None:
        """One event whose batch failed: alone, or else logged as failed so a replay can run it."""
        try:
            self._write([item])
            return
        except Exception as exc:
            log.exception("logging %s failed", item.event.id)
            message = (
                f"the receiver answered this row but could not log how it was processed "
                f"({type(exc).__name__}); replay it"
            )
        try:
            self._log_failed(item.event, item.source, item.environment, message)
        except Exception:
            log.exception("cannot log %s at all; its journal is kept for the next start", item.event.id)
            self._stuck = True

    def _log_failed(self, event: SourceEvent, source: str, environment: str, message: str) -> None:
        """Log an event as failed (replayable), with the reason."""
        self.store.record_received(event, source, environment)
        self.service.mark_error(event.id, message)

    def _give_up(self) -> None:
        log.error(
            "stopping with %d answered events not yet logged; they stay in %s and are logged when "
            "a receiver on this store starts again",
            len(self._queue),
            self.folder,
        )
        self._stuck = True

    # -- reading what was answered ---------------------------------------------------------

    def flush(self, timeout: float = SETTLE_TIMEOUT) -> bool:
        """Wait until this process's answered events are logged."""
        with self._cond:
            target = self._accepted
            if self._written >= target or self._thread is None or not self._thread.is_alive():
                return self._written >= target
            self._hurry = True
            self._wake.set()
            try:
                # A writer that cannot write makes nobody wait: its events are journaled.
                self._cond.wait_for(lambda: self._written >= target or self._failing, timeout)
                return self._written >= target
            finally:
                self._hurry = False

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> bool:
        """Wait until every event answered so far, by any process on this store, is logged."""
        done = self.flush(timeout)
        if self._failing is not None:  # the database refuses writes: other processes wait on it too
            timeout = min(timeout, 0.5)
        return journal.wait_for_others(self.folder, self._own(), timeout, on_orphan=self._recover) and done

    def _own(self) -> set[Path]:
        journal_ = self._journal
        return journal_.paths if journal_ is not None and journal_.pid == os.getpid() else set()


def _commit(conn) -> None:
    """Commit a batch. In a gevent worker the driver's COMMIT runs in a native thread: a commit
    that checkpoints the database's log (copies it into the database file and syncs the disk)
    takes tens of milliseconds, which the worker's other requests would wait out; SQLite lets go
    of the interpreter meanwhile."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent

        driver = conn.connection.dbapi_connection
        try:
            gevent.get_hub().threadpool.apply(driver.commit)
        except sqlite3.Error as exc:
            if not driver.in_transaction:  # SQLite rolled it back: nothing of the batch is kept
                conn.rollback()
                raise DBAPIError.instance("COMMIT", None, exc, sqlite3.Error, dialect=conn.dialect) from exc
            # Still open: SQLAlchemy's commit below tries again, and reports a failure as it does.
    conn.commit()  # after the driver's: ends SQLAlchemy's transaction

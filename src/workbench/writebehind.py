"""Write-behind for the receiver: a request is journaled, answered, and logged in a batch.

On a SQLite store, two transactions per request (the event, then its outcome) cost more than all
the rest of the request. When an event's answer cannot depend on what the store holds, the
receiver does this instead:

1. appends the verified request to this process's journal file (`store.journal`): from here on
   it survives the process, as a committed row would;
2. plans its actions and settles the answer: the local sink's merges (identify, set object, set
   tenant) answer with the record's id, and a trigger with a run id derived from its
   Idempotency-Key, whatever the store holds;
3. answers, and leaves the event to a writer thread that logs events, actions and the local
   sink's writes for every request of the last `pause` seconds in one transaction.

With idempotency on, the key is decided before the answer, exactly once across the processes on
the store, without a transaction in the event log: the request reads whether the log holds the
key (then it is a duplicate) or saw an attempt with it fail (then it takes the ordinary path),
journals the row, and claims the key in the claim arbiter (`store.claims`), a small SQLite file
beside the database: the first event to claim it holds it, a later one is a duplicate. The writer
writes the key into the log with its event. A request on the ordinary path claims its key as
*deciding* first, and a row that finds such a claim (a rare conflict: a row sent again while
another attempt runs) is decided by the writer in the log, its request waiting for it. A claim
found again by the same event (its process died after claiming) is its own; a row recovered from
a dead process's journal is decided by the writer as its request was. A duplicate is journaled
and logged `idempotent` like any other row. (Receivers that log before they answer, on the same
SQLite file, do not see the arbiter: run all of a store's receivers with write-behind.)

`WriteBehind` wraps a `SourceService` and answers as one does (`receive`, `replay`,
`retry_due`, `settle`, `close`); the receiver chooses it once, where its app is built
(`receiving.build_service`). Everything else takes the ordinary path, after the writes still
pending have been made, so the local sink sees requests in the order they were answered: a row
with an idempotency key whose actions do not all succeed (only successes are remembered),
a row sent again with the key of an attempt that failed (the ordinary path runs only the actions
that did not succeed then), another sink, an action whose answer reports what the store held (a
delete, a subscription, a cancel), or a writer that cannot write (the ordinary path answers 503
then).

Reading the log waits for pending writes, this process's and other processes' (`settle`), so the
admin API and the event-log page show every event that was answered. A process that dies leaves
its journal behind; the next receiver process to start (or a retry pass, or a reader waiting on
it) logs what the file holds that the log does not, exactly once, by event id.
"""

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
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from .config import Environment, SourceConfig
from .engine import ActionRequest, Engine, Outcome, SourceEvent, new_event_id
from .errors import NotFound, StoreUnavailable
from .service import HTTP_STATUS, Reply, SourceService
from .sinks.batched import BatchedUsers
from .sinks.local import MERGE_ACTIONS, LocalSink, merge_result, run_id
from .store import journal
from .store.claims import ClaimArbiter
from .store.idempotency import Lookout
from .store.journal import Entry, Journal, Segment

log = logging.getLogger(__name__)

DEFERRABLE = MERGE_ACTIONS | {"workflows_trigger"}
DEFAULT_PAUSE = 0.02  # seconds the writer gathers requests for one transaction (its batch stops the
# worker for a few milliseconds: with 50 ms batches at 1,000 rows/s, a p99 of 11-13 ms; 20 ms, 6-7 ms)
MAX_BATCH = 1000
# Beyond this many unwritten events, or bytes of their bodies, requests take the ordinary path.
MAX_PENDING = 10_000
MAX_PENDING_BYTES = 64 * 1024 * 1024
SETTLE_TIMEOUT = 10.0
SWEEP_SECONDS = 60.0  # how often the writer forgets expired claims


class _Recorder:
    """A sink answering as the local sink will, keeping the requests for the writer."""

    name = "local"
    transactional = True
    bulk = False

    def __init__(self) -> None:
        self.requests: list[ActionRequest] = []

    def apply(self, request: ActionRequest) -> Any:
        self.requests.append(request)
        if request.action == "workflows_trigger":
            return {"workflow_run_id": run_id(request.idempotency_key)}
        return merge_result(request.action, request.payload)


@dataclass(slots=True)
class _Item:
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


def journal_folder(store) -> Path | None:
    """Where a store's journals go: next to its SQLite database file; None for other stores."""
    url = store.engine.url
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or url.query.get("uri"):
        return None
    return journal.journal_dir(Path(database).resolve())


def with_write_behind(service: SourceService, pause: float = DEFAULT_PAUSE) -> SourceService | WriteBehind:
    """`service` wrapped in write-behind when its store is a SQLite file; else `service` itself."""
    folder = journal_folder(service.store)
    if folder is None:
        return service
    return WriteBehind(service, folder, pause=pause)


class WriteBehind:
    """A `SourceService` that journals, answers and logs in batches: the journal, queue and
    writer thread of one receiver process. What it does not do itself, the service does."""

    def __init__(self, service: SourceService, folder: Path, pause: float = DEFAULT_PAUSE):
        self.service = service
        self.store = service.store
        self.folder = folder
        self.pause = pause
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._journal: Journal | None = None
        self._thread: threading.Thread | None = None
        self._accepted = 0  # events queued, in this process
        self._written = 0  # of those, events the log holds
        self._pending_bytes = 0  # the bodies of queued events
        self._hurry = False  # a reader waits: write now
        self._wake = threading.Event()  # cuts the writer's gathering short
        self._failing: str | None = None  # why the last batch could not be written
        self._stuck = False  # an event could not be logged at all: keep the journal for recovery
        self._stopping = False
        self._local = LocalSink(self.store, clock=service.clock)
        self._arbiter = ClaimArbiter(folder.with_suffix(".receiver-claims"))
        self._lookout = Lookout(self.store.engine)
        self._swept = 0.0

    def __getattr__(self, name: str) -> Any:
        if name == "service":  # not set yet
            raise AttributeError(name)
        return getattr(self.service, name)  # the store, the configs, replays, ...

    # -- the request path ------------------------------------------------------------------

    def receive(self, source: str, environment: str, headers: Any, body: bytes | str) -> Reply:
        """Verify, then journal and answer; or log, map and apply first on the ordinary path."""
        config, env, event = self.service.accept(source, environment, headers, body)
        reply = self._answer(config, env, source, environment, event)
        if reply is not None:
            return reply
        if self.service.sink_for(env).transactional:
            self._deciding(config, env, event)
            self.settle()  # the local sink sees rows in the order they were answered
        return self.service.log_and_process(config, env, source, environment, event)

    def retry_due(self, *args, **kwargs) -> int:
        """A retry pass, after logging what dead processes left in their journals."""
        self.recover_orphans()
        return self.service.retry_due(*args, **kwargs)

    def _answer(
        self, config: SourceConfig, env: Environment, source: str, environment: str, event: SourceEvent
    ) -> Reply | None:
        """Journal and answer a verified event; None when it must take the ordinary path."""
        if self._failing is not None or self._stopping:
            return None
        if len(self._queue) >= MAX_PENDING or self._pending_bytes >= MAX_PENDING_BYTES:
            return None
        try:
            item = self._prepare(config, env, source, environment, event, live=True)
        except Exception:  # the ordinary path logs the row first, then reports the crash
            log.exception("planning a row for write-behind failed; taking the ordinary path")
            return None
        if item is None:
            return None
        entry = Entry(
            item.event.id,
            item.event.received_at,
            source,
            environment,
            {k: v for k, v in event.headers.items() if k != "authorization"},
            _raw(event.body),
        )
        with self._cond:
            try:
                item.segment, item.end = self._open().append(entry)
            except OSError as exc:
                log.warning("cannot journal %s, taking the ordinary path: %s", item.event.id, exc)
                return None
            self._queue.append(item)
            self._accepted += 1
            item.size = len(entry.body)
            self._pending_bytes += item.size
            if len(self._queue) == 1:
                self._cond.notify_all()  # the writer waits for a first event, then gathers
        outcome = item.outcome
        if item.key is not None:
            claimed = self._claim_key(item)
            if claimed is None:
                message = (
                    f"{self._failing or 'the event log is busy'}; the row is kept as {item.event.id} "
                    "and will be processed once the database is back"
                )
                body = {"id": item.event.id, "status": "unavailable", "event": None, "error": message}
                return Reply(503, {**body, "actions": []})
            outcome = outcome if claimed else item.engine.duplicate(outcome, item.key)
        return Reply(HTTP_STATUS.get(outcome.status, 500), outcome.to_dict(item.event.id))

    def _claim_key(self, item: _Item) -> bool | None:
        """Whether a journaled event holds its key (or is a duplicate), decided by the claim
        arbiter; when another event decides that key in the event log, the writer decides this
        one there too, and the request waits for it. None: not decided in time."""
        if item.claimed is None:
            try:
                holder = self._answered_claim(item)
            except (sqlite3.Error, OSError) as exc:
                log.warning("the claim arbiter failed, the writer decides %s: %s", item.event.id, exc)
            else:
                if holder is None or holder.answered:
                    with self._cond:
                        if item.claimed is None:  # else the writer got there first, alike
                            item.claimed = holder is None
            if item.claimed is None:
                self.flush()
        return item.claimed

    def _answered_claim(self, item: _Item):
        """Claim a journaled event's key in the arbiter as one its request answers from: None
        when the event holds it now, else the holder found."""
        stamp = item.event.received_at.timestamp()
        return self._arbiter.claim(item.scope, item.key, item.event.id, stamp, item.window, True)

    def _deciding(self, config: SourceConfig, env: Environment, event: SourceEvent) -> None:
        """Before the ordinary path decides an event's key in the event log, claim it as deciding,
        so that another process's request with that key waits for the log instead of answering."""
        if env.idempotency is None or event.origin == "replay":
            return
        try:
            engine = Engine(config, env, None, None, self.service.clock)
            plan = engine.plan(event)
            key, _ = (None, None) if plan.final else engine.idempotency_key(plan.outcome.body, event.headers)
            if key is None:
                return
            event.received_at = event.received_at or self.service.clock()
            event.id = event.id or new_event_id(event.received_at)
            self._arbiter.claim(
                (config.source, env.name, plan.outcome.event),
                key,
                event.id,
                event.received_at.timestamp(),
                env.idempotency.window.total_seconds(),
                False,
            )
        except Exception:  # the ordinary path reports what failed here
            log.warning("could not claim the key of a row on the ordinary path", exc_info=True)

    def _prepare(
        self,
        config: SourceConfig,
        env: Environment,
        source: str,
        environment: str,
        event: SourceEvent,
        live: bool = False,
    ) -> _Item | None:
        """The event planned and answered against the recorder, when its answer cannot depend on
        the store; None otherwise. Nothing is written. With idempotency, a `live` request learns
        here whether the event log already holds its key (then it is a duplicate)."""
        if not self.service.sink_for(env).transactional:
            return None
        engine = Engine(config, env, None, None, self.service.clock)
        plan = engine.plan(event)
        if any(mapping.action not in DEFERRABLE for mapping, _ in plan.todo):
            return None
        key = None
        if env.idempotency is not None and not plan.final and event.origin != "replay":
            key, note = engine.idempotency_key(plan.outcome.body, event.headers)
            plan.outcome.idempotency_key, plan.outcome.idempotency_note = key, note
        event.received_at = event.received_at or self.service.clock()
        event.id = event.id or new_event_id(event.received_at)
        recorder = _Recorder()
        engine.sink = recorder
        outcome = plan.outcome if plan.final else engine.apply(plan, event.id)
        item = _Item(event, source, environment, outcome, recorder.requests)
        if key is not None:
            if outcome.status != "processed":
                # Only successes are remembered: the ordinary path reserves and releases the key.
                return None
            item.key, item.scope = key, (config.source, env.name, outcome.event)
            item.window = env.idempotency.window.total_seconds()
            held, failed = self._lookout.look(item.scope, key, event.received_at, item.window)
            if failed:
                # Sent again after an attempt that failed: the ordinary path runs only what did
                # not succeed then.
                return None
            if held and live:
                item.claimed = False
            item.engine = engine
        return item

    def _open(self) -> Journal:
        """This process's journal and writer, made on first use (and again after a fork)."""
        if self._journal is None or self._journal.pid != os.getpid():
            self._journal = Journal(self.folder)
            self._queue, self._accepted, self._written, self._pending_bytes = [], 0, 0, 0
            self._thread = threading.Thread(target=self._run, name="workbench-writer", daemon=True)
            self._thread.start()
            atexit.register(self.close)
        return self._journal

    # -- the writer ------------------------------------------------------------------------

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

    def _write(self, items: list[_Item]) -> None:
        """Log events with their actions and make the local sink's writes, in one transaction."""
        now = self.service.clock()
        with self.store.engine.connect() as conn:
            try:
                self._log(conn, items, now)
            except BaseException:
                conn.rollback()
                raise
            _commit(conn)

    def _log(self, conn, items: list[_Item], now) -> None:
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

    def _decide(self, item: _Item, port) -> bool:
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

    def _write_alone(self, item: _Item) -> None:
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

    # -- recovery --------------------------------------------------------------------------

    def recover_orphans(self) -> int:
        """Log what the journals of dead processes hold; returns how many events were logged."""
        done = 0
        for path in journal.journal_files(self.folder, self._own()):
            fd = journal.try_lock(path)
            if fd is not None:
                done += self._recover(path, fd)
        return done

    def _recover(self, path: Path, fd: int) -> int:
        """Log a dead process's journal (whose lock `fd` holds), then remove it."""
        try:
            entries = list(journal.read_entries(path))
            done = 0
            for start in range(0, len(entries), MAX_BATCH):
                done += self._recover_batch(entries[start : start + MAX_BATCH])
            journal.remove_journal(path)
            if done:
                log.warning("logged %d answered events from %s, left by a process that stopped", done, path)
            return done
        finally:
            os.close(fd)

    def _recover_batch(self, entries: list[Entry]) -> int:
        """Log the entries the log does not hold (its process may have died after a commit);
        an error leaves the whole file for the next try."""
        with self.store.engine.connect() as conn:
            present = self.store.logged_ids(conn, [e.event_id for e in entries])
            conn.rollback()
        batch, alone = [], []
        for entry in entries:
            if entry.event_id in present:
                continue
            event = SourceEvent(
                entry.body, entry.headers, origin="live", id=entry.event_id, received_at=entry.received_at
            )
            try:
                config, env = self.service.configs.environment(entry.source, entry.environment)
            except NotFound as exc:
                self._log_failed(event, entry.source, entry.environment, f"{exc}; the row is kept")
                continue
            item = self._prepare(config, env, entry.source, entry.environment, event)
            if item is None:
                alone.append((config, env, entry, event))
            else:
                batch.append(item)
        if batch:
            self._write(batch)
        for config, env, entry, event in alone:  # the config changed since: the ordinary path
            self.service.log_and_process(config, env, entry.source, entry.environment, event)
        return len(batch) + len(alone)

    # -- stopping --------------------------------------------------------------------------

    def close(self, timeout: float = 8.0) -> None:
        """Write what is pending, stop the writer and remove the journal once it is all logged."""
        thread = self._thread
        if thread is not None and self._journal is not None and self._journal.pid == os.getpid():
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
                self._wake.set()
            thread.join(timeout)
            with self._cond:
                done = not self._queue and not self._stuck and not thread.is_alive()
                self._journal.close(remove=done)
                self._journal, self._thread = None, None
        self._arbiter.close()
        self._lookout.close()


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


def _raw(body: bytes | str | dict) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    raise TypeError("a received body is bytes or text")

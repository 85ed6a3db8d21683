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

The request path is here (`WriteBehind`); the writer thread and the readers' waits in `writer`,
the recovery of dead processes' journals in `recovery`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..config import Environment, SourceConfig
from ..engine import ActionRequest, Engine, SourceEvent, new_event_id
from ..service import HTTP_STATUS, Reply, SourceService
from ..sinks.local import MERGE_ACTIONS, LocalSink, merge_result, run_id
from ..store import journal
from ..store.claims import ClaimArbiter
from ..store.idempotency import Lookout
from ..store.journal import Entry, Journal
from .recovery import Recovery
from .writer import Item, Writer

log = logging.getLogger(__name__)

DEFERRABLE = MERGE_ACTIONS | {"workflows_trigger"}
DEFAULT_PAUSE = 0.02  # seconds the writer gathers requests for one transaction (its batch stops the
# worker for a few milliseconds: with 50 ms batches at 1,000 rows/s, a p99 of 11-13 ms; 20 ms, 6-7 ms)
# Beyond this many unwritten events, or bytes of their bodies, requests take the ordinary path.
MAX_PENDING = 10_000
MAX_PENDING_BYTES = 64 * 1024 * 1024


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


class WriteBehind(Writer, Recovery):
    """A `SourceService` that journals, answers and logs in batches: the journal, queue and
    writer thread of one receiver process. What it does not do itself, the service does."""

    def __init__(self, service: SourceService, folder: Path, pause: float = DEFAULT_PAUSE):
        self.service = service
        self.store = service.store
        self.folder = folder
        self.pause = pause
        self._cond = threading.Condition()
        self._queue: list[Item] = []
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

    def _claim_key(self, item: Item) -> bool | None:
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

    def _answered_claim(self, item: Item):
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
    ) -> Item | None:
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
        item = Item(event, source, environment, outcome, recorder.requests)
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


def _raw(body: bytes | str | dict) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    raise TypeError("a received body is bytes or text")

"""The transport-free pipeline shared by the HTTP receiver, `workbench replay` and the retry worker.

Verify, record (committed), process, record the outcome. A verified request is in the log before
any action runs; if processing crashes, the event is marked `failed` so a replay picks it up.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .config import ConfigSet, Environment, SourceConfig
from .engine import Engine, Outcome, SourceEvent, is_batch_entry, row_identity, utcnow
from .errors import NotFound, NotReplayable, StoreUnavailable, WorkbenchError
from .sinks import make_sink
from .store.db import describe
from .store.idempotency import logged_result
from .verify import verify

log = logging.getLogger(__name__)

HTTP_STATUS = {
    "processed": 200,
    "idempotent": 200,
    "no_mapping": 200,
    "queued": 202,
    "invalid": 400,
    "failed": 422,
}
# An event still `received` this long after it arrived lost its process mid-way; retry it.
STALLED_AFTER = timedelta(minutes=10)


@dataclass
class Reply:
    """What the receiver answers: an HTTP status and the JSON body."""

    http_status: int
    body: dict[str, Any]


class SourceService:
    """Receives, replays and retries events for every configured source."""

    def __init__(
        self,
        configs: ConfigSet,
        store,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.configs = configs
        self.store = store
        self.environ = os.environ if environ is None else environ
        self.clock = clock
        self._sinks: dict[int, tuple[Any, Environment]] = {}
        self._sinks_version = -1
        self._sinks_lock = threading.Lock()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until every event answered so far is in the log: here, each is before its answer."""
        return True

    def close(self) -> None:
        """Nothing is left to write: each event is logged before it is answered."""

    # -- sinks -----------------------------------------------------------------------------

    def sink_for(self, env: Environment):
        """One sink per environment of the loaded configs; a reload starts afresh."""
        entry = self._sinks.get(id(env))
        if entry is not None and entry[1] is env and self._sinks_version == self.configs.version:
            return entry[0]  # the common case, without the lock
        with self._sinks_lock:
            if self._sinks_version != self.configs.version:
                self._sinks, self._sinks_version = {}, self.configs.version
            # The entry holds `env` itself, so its id cannot be reused while the entry lives.
            entry = self._sinks.get(id(env))
            if entry is None or entry[1] is not env:
                entry = self._sinks[id(env)] = (make_sink(env.sink, self.store, self.environ), env)
            return entry[0]

    # -- receiving -------------------------------------------------------------------------

    def receive(self, source: str, environment: str, headers: Any, body: bytes | str) -> Reply:
        """Verify, log, map and apply one request; the reply says exactly what happened."""
        config, env, event = self.accept(source, environment, headers, body)
        return self.log_and_process(config, env, source, environment, event)

    def accept(
        self, source: str, environment: str, headers: Any, body: bytes | str
    ) -> tuple[SourceConfig, Environment, SourceEvent]:
        """The config and environment a request is for, once it is verified, and its event."""
        config, env = self.configs.environment(source, environment)
        verify(headers, env.secrets(self.environ))
        return config, env, SourceEvent(body, headers, origin="live", received_at=self.clock())

    def log_and_process(
        self, config: SourceConfig, env: Environment, source: str, environment: str, event: SourceEvent
    ) -> Reply:
        """Log a verified event (committed), then process it and log its outcome."""
        with self.store.connection() as conn:
            # Committed here, before any action runs.
            event_id = self.store.record_received(event, source, environment, conn=conn, commit=True)
            try:
                outcome = self._process(config, env, event, new=True, conn=conn)
            except StoreUnavailable as exc:
                # Rolled back whole; the event stays `received`, which the retry worker finishes later.
                log.warning("processing %s interrupted: %s", event_id, exc)
                message = (
                    f"{exc}; the row is logged as {event_id} and will be finished once the database is back"
                )
                return Reply(
                    503,
                    {"id": event_id, "status": "unavailable", "event": None, "error": message, "actions": []},
                )
            except Exception as exc:
                log.exception("processing %s crashed", event_id)
                message = _crash_message(exc, event_id)
                self.mark_error(event_id, message)
                return Reply(
                    500, {"id": event_id, "status": "error", "event": None, "error": message, "actions": []}
                )
        return Reply(HTTP_STATUS.get(outcome.status, 500), outcome.to_dict(event_id))

    def mark_error(self, event_id: str, message: str) -> None:
        try:
            self.store.mark_error(event_id, message, self.clock())
        except Exception:  # the event stays `received`, which the retry worker picks up later
            log.exception("could not mark %s as failed", event_id)

    def _process(
        self, config: SourceConfig, env: Environment, event: SourceEvent, new: bool = False, conn=None
    ) -> Outcome:
        """Run an event and record its outcome; `new`: it was only just recorded (no actions yet).
        With a transactional sink the work commits on `conn` when one is given."""
        sink = self.sink_for(env)
        if sink.transactional:
            # The sink's writes, the idempotency key and the action log commit together.
            with self.store.unit_of_work(conn) as conn:
                engine = Engine(config, env, sink.bind(conn), self.store.idempotency(conn), self.clock)
                outcome = engine.process(event)
                self.store.record_outcome(
                    event.id, outcome, conn=conn, now=self.clock(), new=new, scope=(config.source, env.name)
                )
            return outcome
        engine = Engine(config, env, sink, self.store.idempotency(), self.clock)
        outcome = engine.process(event)
        self.store.record_outcome(
            event.id, outcome, now=self.clock(), new=new, scope=(config.source, env.name)
        )
        return outcome

    # -- replays and retries ---------------------------------------------------------------

    def replay(self, event_id: str) -> dict[str, Any]:
        """Re-run the actions of a logged event that did not succeed; returns the updated entry."""
        self._rerun(event_id, keep=("success",))
        return self.store.get_event(event_id)

    def _rerun(self, event_id: str, keep: tuple[str, ...]) -> Outcome | None:
        entry = self.store.get_event(event_id)
        if entry is None:
            raise NotFound(f"no event `{event_id}` in the log")
        if is_batch_entry(entry["origin"], entry["body"]):
            raise NotReplayable(
                f"`{event_id}` stands for a batch of export rows applied in bulk, and its actions "
                "succeeded; to apply those rows again, run the backfill of that export again "
                "(with --full to send every row whatever was applied before)"
            )
        if entry["status"] == "idempotent":
            return None  # a duplicate ran nothing on purpose; replaying it would run the actions twice
        config, env = self.configs.environment(entry["source"], entry["environment"])
        if entry["status"] == "received" and self.sink_for(env).transactional:
            # Its processing never finished (a crash, or the database went away) and, with a
            # transactional sink, nothing of it was kept: run it as it would have run then,
            # deduplication included, so that a copy resent meanwhile does not run twice.
            event = SourceEvent(
                self.store.raw_body(event_id),
                entry["headers"],
                origin=entry["origin"],
                id=event_id,
                received_at=self.clock(),
            )
            return self._process(config, env, event)
        earlier = {a["mapping"]: a for a in entry["actions"]}
        previous = {mapping: logged_result(a) for mapping, a in earlier.items() if a["status"] in keep}
        # What decides a trigger's Idempotency-Key this time (see `Engine.apply`).
        keys = {mapping: (a["request_key"], a["attempts"]) for mapping, a in earlier.items()}
        event = SourceEvent(
            self.store.raw_body(event_id),
            entry["headers"],
            origin="replay",
            id=event_id,
            received_at=self.clock(),
        )
        # A backfilled row's actions keep the keys they were first sent with (see `row_identity`).
        row = None
        if entry["origin"] == "backfill" and entry["idempotency_key"] and entry["event"]:
            row = row_identity(
                entry["source"], entry["environment"], entry["event"], entry["idempotency_key"]
            )
        sink = self.sink_for(env)
        scope = (entry["source"], entry["environment"])
        if sink.transactional:
            with self.store.unit_of_work() as conn:
                outcome, applied = self._apply(config, env, sink.bind(conn), event, previous, row, keys)
                self.store.record_outcome(
                    event_id, outcome, conn=conn, now=self.clock(), applied=applied, scope=scope
                )
                self.store.count_replay(event_id, conn)
        else:
            outcome, applied = self._apply(config, env, sink, event, previous, row, keys)
            with self.store.transaction() as conn:
                self.store.record_outcome(
                    event_id, outcome, conn=conn, now=self.clock(), applied=applied, scope=scope
                )
                self.store.count_replay(event_id, conn)
        self._remember_key(config, env, entry["status"], outcome)
        return outcome

    def _apply(self, config, env, sink, event, previous, row=None, keys=None) -> tuple[Outcome, list[str]]:
        """Plan afresh, keep the earlier results in `previous`, apply the rest (`row`, `keys`:
        see `Engine.apply`)."""
        engine = Engine(config, env, sink, None, self.clock)
        plan = engine.plan(event)
        if plan.final:
            return plan.outcome, []
        if env.idempotency is not None:
            # Replays skip deduplication, but the key is still logged (and remembered on success).
            plan.outcome.idempotency_key, plan.outcome.idempotency_note = engine.idempotency_key(
                plan.outcome.body, plan.context["headers"]
            )
        applied = plan.keep(previous)
        return engine.apply(plan, event.id, row, keys), applied

    def _remember_key(self, config, env, before: str, outcome: Outcome) -> None:
        """Only successes are remembered: a replay that succeeded is, a queued event that gave up is not."""
        key = outcome.idempotency_key
        if not key or env.idempotency is None or not outcome.event:
            return
        port = self.store.idempotency()
        scope = (config.source, env.name, outcome.event)
        now = self.clock()
        if outcome.status == "processed":
            if port.reserve(scope, key, now, env.idempotency.window.total_seconds()):
                port.complete(scope, key, now)
        elif before == "queued" and outcome.status == "failed":
            port.forget(scope, key)

    def retry_due(self, now: datetime | None = None, limit: int = 100) -> int:
        """Retry queued actions whose backoff has elapsed, and events whose process died; returns
        how many events were retried."""
        now = now or self.clock()
        done = 0
        for event_id in self.store.claim_due(now, limit):
            done += self._retry_one(event_id, keep=("success", "failed"))
        for event_id in self.store.claim_stalled(STALLED_AFTER, now, limit):
            done += self._retry_one(event_id, keep=("success",))
        return done

    def _retry_one(self, event_id: str, keep: tuple[str, ...]) -> int:
        try:
            self._rerun(event_id, keep)
        except WorkbenchError as exc:
            log.warning("cannot retry %s: %s", event_id, exc)
            return 0
        except Exception:
            log.exception("retrying %s crashed", event_id)
            return 0
        return 1


def _crash_message(exc: Exception, event_id: str) -> str:
    """The reply when processing a logged event raised: the database's own words when the store
    failed (a full disk, a read-only file), not only an exception's name."""
    if isinstance(getattr(exc, "orig", None), Exception):  # a database driver's error, wrapped
        return (
            f"the event log could not record how the row was processed: {describe(exc)}; the event is "
            f"logged as {event_id} and can be replayed once the store can be written"
        )
    return (
        f"internal error while processing ({type(exc).__name__}); the event is logged as "
        f"{event_id} and can be replayed"
    )

"""Backfill: Clay export rows through the very same mappings as live rows, in batches.

Rows are streamed (from a CSV export or a DuckDB table), turned into bodies by the config's
`clay.body_template`, planned by the core `Engine` and applied to the environment's sink. Each
batch is one transaction of the event log: events, actions and the idempotency keys of what
succeeded, written with a few multi-row statements. When the sink keeps its data in the same
database (the local sink), its writes join that transaction too, so a killed backfill loses
whole batches only and a re-run completes it without duplicates.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import SQLAlchemyError

from ..clay import body_builder, template_event
from ..clay.bodies import DEFAULT_EVENT
from ..config import SourceConfig
from ..engine import (
    Engine,
    Outcome,
    Plan,
    SourceEvent,
    content_hash,
    new_event_ids,
    normalize_headers,
    row_identity,
    utcnow,
)
from ..errors import CoercionError
from ..sinks.batched import BatchedUsers
from ..sinks.local import LocalSink
from ..store import Store, StoreError, idempotency_keys
from ..store.db import checkpoint_pages, describe, in_chunks, set_pragmas
from ..store.fast import insert_many, json_text
from .report import FAILURE_STATUSES, BackfillSummary, FailureWriter
from .sources import RowSource

# How long content-hash keys are remembered when the config has no idempotency of its own:
# as long as the event log keeps its entries.
HASH_WINDOW = timedelta(days=30)
DEFAULT_BATCH = 2000
BACKFILL_CACHE_KIB = 64 * 1024
BACKFILL_CHECKPOINT_BYTES = 64 * 1024 * 1024
# Allocations between two collections of the youngest generation while a backfill runs (Python's
# default is 700); see `_fewer_collections`.
BACKFILL_GC_THRESHOLD = 50_000


@dataclass(slots=True)
class _Row:
    number: int
    cells: list[Any]
    status: str = ""
    reason: str | None = None
    event_id: str | None = None
    plan: Plan | None = None
    outcome: Outcome | None = None
    key: str | None = None
    note: str | None = None


# -- the backfill -----------------------------------------------------------------------


def _bind_sink(sink: Any) -> Callable[[Any], Any] | None:
    """A function giving the sink bound to a connection, when the sink writes to the store."""
    if getattr(sink, "transactional", False) and callable(getattr(sink, "bind", None)):
        return sink.bind
    return None


class Backfill:
    """Runs export rows through one environment of a config, batch by batch."""

    def __init__(
        self,
        config: SourceConfig,
        environment: str,
        store: Store,
        sink: Any,
        *,
        event: str | None = None,
        headers: Mapping[str, str] | None = None,
        batch_size: int = DEFAULT_BATCH,
        bulk: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.config = config
        self.env = config.environment(environment)
        self.store = store
        self.sink = sink
        self.bind = _bind_sink(sink)
        self.engine = Engine(config, self.env, sink, clock=clock)
        self.template = config.body_template
        self.event_override = event
        self.default_event = event or template_event(self.template) or DEFAULT_EVENT
        self.headers = normalize_headers(headers) if headers else {}
        self.batch_size = batch_size
        self.bulk = bulk
        self.clock = clock
        if self.env.idempotency is not None:
            self.window = self.env.idempotency.window
        else:
            self.window = HASH_WINDOW
        self.scope = (config.source, self.env.name)
        self.note: Callable[[str], None] | None = None  # what the run waits for, on its progress bar
        self._batch_conn = None  # see `_batch_connection`
        self._batch_restore: dict[str, int] = {}  # the PRAGMAs it had before

    def missing_columns(self, columns: Iterable[str]) -> list[str]:
        """Columns the body template names that the export does not have."""
        have = set(columns)
        wanted = []
        for spec in (self.template or {}).values():
            column = (
                spec if isinstance(spec, str) else spec.get("column") if isinstance(spec, Mapping) else None
            )
            if column is not None and column not in have:
                wanted.append(column)
        return wanted

    def run(
        self,
        source: RowSource,
        *,
        failures: str | os.PathLike | None = None,
        limit: int | None = None,
        progress: bool | None = None,
    ) -> BackfillSummary:
        """Process every row of `source` (at most `limit`).

        Ctrl-C rolls the current batch back and returns the summary so far, marked `interrupted`;
        running again completes the rest.
        """
        from tqdm.auto import tqdm

        summary = BackfillSummary()
        started = time.perf_counter()
        total = source.total if limit is None else min(limit, source.total or limit)
        writer = FailureWriter(failures, source.header) if failures else None
        bar = tqdm(
            total=total, unit="row", desc="backfill", disable=(not progress) if progress is not None else None
        )
        build = body_builder(source.columns, self.template, self.default_event)
        self.note = lambda text: bar.set_postfix_str(text, refresh=True)
        try:
            with _fewer_collections():
                batch: list[_Row] = []
                for number, cells in source.rows():
                    if limit is not None and summary.rows + len(batch) >= limit:
                        break
                    batch.append(_Row(number, cells))
                    if len(batch) >= self.batch_size:
                        self._flush(batch, build, summary, writer)
                        bar.update(len(batch))
                        batch = []
                if batch:
                    self._flush(batch, build, summary, writer)
                    bar.update(len(batch))
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            self._release_batch_connection()
            bar.close()
            if writer:
                writer.close()
            summary.seconds = time.perf_counter() - started
        return summary

    # -- one batch ----------------------------------------------------------------------

    def _flush(self, batch: list[_Row], build, summary: BackfillSummary, writer) -> None:
        try:
            self._run_batch(batch, build)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot write the event log in {self.store!r}: {describe(exc)}; "
                f"the batch from row {batch[0].number} was not kept, run the same backfill again"
            ) from exc
        for row in batch:
            summary.counts[row.status] += 1
            if writer and row.status in FAILURE_STATUSES:
                writer.write(row)

    def _run_batch(self, batch: list[_Row], build) -> None:
        now = self.clock()
        for row, event_id in zip(batch, new_event_ids(len(batch), now), strict=True):
            self._prepare(row, build, event_id)
        keyed = [r for r in batch if r.key is not None]
        if self.bind is not None:
            conn = self._batch_connection()
            with conn.begin():
                done = self._done_keys(conn, keyed, now)
                bound = self.bind(conn)
                if isinstance(bound, LocalSink):
                    bound = BatchedUsers(bound, conn)
                    bound.prefetch(_identified_ids(batch))
                self.engine.sink = bound
                self._apply(batch, done)
                if isinstance(bound, BatchedUsers):
                    bound.flush()
                self._write(conn, batch, now)
        else:
            with self.store.engine.begin() as conn:
                done = self._done_keys(conn, keyed, now)
            sink = self.sink
            if self.bulk and getattr(sink, "name", None) == "knock":
                from .knock import BulkKnock  # the SDK loads only when Knock is the sink

                sink = BulkKnock(sink, note=self.note)
            self.engine.sink = sink
            self._apply(batch, done)
            if sink is not self.sink:
                _settle(batch, sink.flush())
            with self.store.engine.begin() as conn:
                self._write(conn, batch, now)

    def _batch_connection(self):
        """The one connection a run's batches take turns on (with a transactional sink). On SQLite
        it gets a page cache of BACKFILL_CACHE_KIB, which then holds the idempotency and user
        indexes a backfill touches all over from one batch to the next, and checkpoints of the
        write-ahead log every BACKFILL_CHECKPOINT_BYTES instead of every few batches (each one
        waits for the disk). Neither changes what a commit guarantees."""
        if self._batch_conn is None:
            conn = self.store.engine.connect()
            if conn.dialect.name == "sqlite":
                dbapi = conn.connection.dbapi_connection
                pages = checkpoint_pages(dbapi, BACKFILL_CHECKPOINT_BYTES)
                pragmas = {"cache_size": -BACKFILL_CACHE_KIB, "wal_autocheckpoint": pages}
                self._batch_restore = set_pragmas(conn, pragmas)
            self._batch_conn = conn
        return self._batch_conn

    def _release_batch_connection(self) -> None:
        """Back to the pool with SQLite's settings as they were, so that whoever takes it next
        (an embedded receiver in the same kernel) does not keep a backfill's cache and log size."""
        conn, self._batch_conn = self._batch_conn, None
        if conn is None:
            return
        restore, self._batch_restore = self._batch_restore, {}
        try:
            if restore and not conn.invalidated:
                set_pragmas(conn, restore)
        finally:
            conn.close()

    def _prepare(self, row: _Row, build, event_id: str) -> None:
        try:
            body = build(row.cells)
        except CoercionError as exc:
            row.status, row.reason = (
                "invalid",
                f"row {row.number}: {exc}; fix the cell in Clay or the template",
            )
            return
        if self.event_override is not None:
            body["event"] = self.event_override
        row.event_id = event_id
        plan = self.engine.plan(SourceEvent(body, self.headers, origin="backfill"))
        row.plan = plan
        if plan.final:
            return
        if self.env.idempotency is not None:
            row.key, row.note = self.engine.idempotency_key(plan.outcome.body, plan.context["headers"])
        else:
            row.key = content_hash(plan.outcome.body)

    def _done_keys(self, conn, rows: list[_Row], now: datetime) -> set[tuple[str, str]]:
        """(event type, key) pairs already executed, or being executed by another process."""
        if not rows:
            return set()
        source, environment = self.scope
        by_type: dict[str, set[str]] = {}
        for row in rows:
            by_type.setdefault(row.plan.outcome.event, set()).add(row.key)
        found = []
        for event_type, key_set in by_type.items():
            keys = sorted(key_set)
            for chunk in in_chunks(keys):
                found += conn.execute(
                    _DONE_KEYS,
                    {"source": source, "environment": environment, "event_type": event_type, "keys": chunk},
                ).all()
        # Expired records are forgotten so the key can be taken again.
        expired = [r.id for r in found if r.expires_at <= now]
        for chunk in in_chunks(expired):
            conn.execute(delete(idempotency_keys).where(idempotency_keys.c.id.in_(chunk)))
        found = [r for r in found if r.expires_at > now]
        return {(r.event_type, r.key) for r in found}

    def _apply(self, batch: list[_Row], done: set[tuple[str, str]]) -> None:
        for row in batch:
            plan = row.plan
            if plan is None:
                continue
            outcome = plan.outcome
            if plan.final:
                row.outcome, row.status, row.reason = outcome, outcome.status, outcome.error
                continue
            outcome.idempotency_key, outcome.idempotency_note = row.key, row.note
            if row.key is not None:
                marker = (outcome.event, row.key)
                if marker in done:
                    row.status, row.plan = "idempotent", None
                    continue
            identity = None if row.key is None else row_identity(*self.scope, outcome.event, row.key)
            self.engine.apply(plan, row.event_id, identity)
            row.outcome, row.status = outcome, outcome.status
            if row.key is not None and outcome.status in ("processed", "queued"):
                # A row repeated within the export runs once too.
                done.add((outcome.event, row.key))
            if outcome.status == "failed":
                row.reason = "; ".join(
                    f"{a.action}: {a.error}" for a in outcome.actions if a.status == "failed"
                )

    def _write(self, conn, batch: list[_Row], now: datetime) -> None:
        source, environment = self.scope
        done, key_rows = [], []
        expires = now + self.window
        for row in batch:
            outcome = row.outcome
            if outcome is None:
                continue
            # The body as the HTTP API column would have sent it.
            event = SourceEvent(
                json_text(outcome.body), self.headers, origin="backfill", id=row.event_id, received_at=now
            )
            done.append((event, source, environment, outcome))
            if row.key is not None and outcome.status in ("processed", "queued"):
                key_rows.append(
                    {
                        "source": source,
                        "environment": environment,
                        "event_type": outcome.event,
                        "key": row.key,
                        "state": "done",
                        "window_seconds": self.window.total_seconds(),
                        "created_at": now,
                        "expires_at": expires,
                    }
                )
        self.store.record_processed(conn, done, now)
        insert_many(conn, idempotency_keys, key_rows)


# The whole unique index (scope, event type, key) is used: one lookup per key, however many keys
# the log already holds. Built once: a statement made per chunk would hold its chunk in reference
# cycles until the collector frees them, which a run lets it do rarely (`_fewer_collections`).
_DONE_KEYS = select(
    idempotency_keys.c.id,
    idempotency_keys.c.event_type,
    idempotency_keys.c.key,
    idempotency_keys.c.expires_at,
).where(
    idempotency_keys.c.source == bindparam("source"),
    idempotency_keys.c.environment == bindparam("environment"),
    idempotency_keys.c.event_type == bindparam("event_type"),
    idempotency_keys.c.key.in_(bindparam("keys", expanding=True)),
)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic garbage collector, tuned for the length of a run: the objects already
    alive (modules, the config, SQLAlchemy's and DuckDB's caches…) are frozen out of its scans,
    and the youngest generation is collected every BACKFILL_GC_THRESHOLD allocations instead of
    every 700. A run's rows are freed by reference counting as each batch ends; the collector
    only walked them and everything else, again and again (a sixth of a run's time on a big
    export). Both are put back afterwards, so a notebook kernel keeps its own settings; a
    process that froze objects itself is left to its own freezing."""
    threshold = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(threshold[0], BACKFILL_GC_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()


def _settle(batch: list[_Row], settled: dict) -> None:
    """Apply what became of actions sent in bulk to their rows' outcomes."""
    if not settled:
        return
    for row in batch:
        outcome = row.outcome
        if outcome is None or not outcome.actions:
            continue
        changed = False
        for result in outcome.actions:
            fate = settled.get((row.event_id, result.mapping))
            if fate is not None:
                result.status, result.error, result.retry_after, result.result = (
                    fate.status,
                    fate.error,
                    fate.retry_after,
                    None,
                )
                changed = True
        if changed:
            statuses = {a.status for a in outcome.actions}
            outcome.status = (
                "failed" if "failed" in statuses else "queued" if "queued" in statuses else "processed"
            )
            row.status = outcome.status
            if outcome.status == "failed":
                row.reason = "; ".join(
                    f"{a.action}: {a.error}" for a in outcome.actions if a.status == "failed"
                )


def _identified_ids(batch: list[_Row]) -> list[str]:
    ids = []
    for row in batch:
        if row.plan is not None:
            for mapping, result in row.plan.todo:
                if mapping.action == "users_identify":
                    ids.append(result.payload["id"])
    return ids

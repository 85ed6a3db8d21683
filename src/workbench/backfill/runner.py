"""Backfill as a sync: Clay export rows through the very same mappings as live rows, in batches.

Rows are streamed (from a CSV export or a DuckDB table), turned into bodies by the config's
`clay.body_template` and planned by the core `Engine`. Each planned action is then compared with
what was last applied to its targets (`workbench.targets`, remembered per environment in the
store, by live rows too): only an action whose payload hash differs, or whose target was never
applied, goes to the sink; the rest are `unchanged`. Each batch is one transaction of the event
log: the events of rows that did something (or failed), their actions, and the hashes of what
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
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..clay import body_builder, template_event
from ..clay.bodies import DEFAULT_EVENT
from ..config import SourceConfig
from ..engine import (
    Engine,
    new_event_ids,
    normalize_headers,
    utcnow,
)
from ..sinks.batched import BatchedUsers
from ..store import Store, StoreError
from ..store.applied import valid_rows
from ..store.checkpoints import Checkpoints, checkpoints_for
from ..store.db import describe, set_pragmas, tune_for_batches
from .columnar import EVERY, ColumnarPlan, FailedRow, OrdinaryBatches, OrdinaryRow, OtherRow
from .fingerprints import config_digest
from .report import FAILURE_STATUSES, BackfillSummary, FailureWriter, SyncPlan
from .rules import Row, RowRules, identified_ids, settle
from .sources import RowSource

DEFAULT_BATCH = 2000
# Rows planned in bulk (see `columnar`) are written this many batches at a time: they hold
# little memory and cost a transaction's sync each. The first batch of them is written as soon as
# it is one batch long, so writing starts while DuckDB computes the rest.
ORDINARY_BATCHES = 5
BACKFILL_CACHE_KIB = 64 * 1024
BACKFILL_CHECKPOINT_BYTES = 64 * 1024 * 1024
# Allocations between two collections of the youngest generation while a backfill runs (Python's
# default is 700); see `_fewer_collections`.
BACKFILL_GC_THRESHOLD = 50_000


# -- the backfill -----------------------------------------------------------------------


def _bind_sink(sink: Any) -> Callable[[Any], Any] | None:
    """A function giving the sink bound to a connection, when the sink writes to the store (no
    sink: a backfill that only plans)."""
    if sink is not None and sink.transactional:
        return sink.bind
    return None


class Backfill(RowRules):
    """Runs export rows through one environment of a config as a sync, batch by batch.

    `full`: send every action again, whatever was applied before, but for workflow triggers that
    already ran for the same row, mapping and payload; `retrigger`: send those again too."""

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
        full: bool = False,
        retrigger: bool = False,
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
        self.full = full
        self.retrigger = retrigger
        self.clock = clock
        self.scope = (config.source, self.env.name)
        self.note: Callable[[str], None] | None = None  # what the run waits for, on its progress bar
        # Target: the payload hash this run last sent to it, both cut to 64-bit numbers (a run may
        # send to millions of targets; a clash of two would only send something once more).
        self.sent: dict[int, int] = {}
        # Rows remembered by fingerprint under this config (see `fingerprints`): a run's digest and
        # {fingerprint: how the row ended} of those that still hold.
        self.digest: str | None = None
        self.valid: dict[str, str] = {}
        self._forgotten = False
        self._build: Callable[[list[Any]], dict] | None = None
        self._batch_conn = None  # see `_batch_connection`
        self._batch_restore: dict[str, int] = {}  # the PRAGMAs it had before
        self._checkpoints: Checkpoints = Checkpoints()  # of its database's log (see `_batch_connection`)

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
        summary = BackfillSummary()
        self._build = body_builder(source.columns, self.template, self.default_event)
        self.digest = config_digest(self.config, self.env.name, self.event_override, self.headers)
        self.valid, self._forgotten = {}, False
        if not (self.full or self.retrigger):
            with self.store.engine.connect() as conn:
                self.valid = valid_rows(conn, self.scope, self.digest)
            if failures:  # their rows go to the failures file again
                self.valid = {f: s for f, s in self.valid.items() if s not in FAILURE_STATUSES}
            if limit is None and self._compared_in_bulk(source, summary):
                return summary
        writer = FailureWriter(failures, source.header) if failures else None
        ordinary = self._ordinary(source, every_cell=writer is not None) if limit is None else None
        try:
            self._each_batch(
                source,
                limit,
                progress,
                summary,
                lambda batch, build, also=None, first=None: self._flush(batch, build, summary, also, first),
                ordinary,
                writer,
            )
        finally:
            if writer:
                writer.close()
        return summary

    def _compared_in_bulk(self, source: RowSource, summary: BackfillSummary) -> bool:
        """A re-run that needs no row planned: every row of the export is fingerprinted by DuckDB
        and found remembered (see `fingerprints`), so it is counted as it ended and nothing is
        read, sent or written. False (nothing counted) when some row is not, or DuckDB cannot
        read the export as `ExportReader` does (its count of rows differs)."""
        if not self.valid:
            return False
        started = time.perf_counter()
        bulk = source.fingerprinted(self._build.reads)
        if bulk is None:
            return False
        import duckdb  # the clay extra, as the sources

        try:
            found = bulk.match(self.valid)
        except duckdb.Error:
            return False
        if found.get(None) or sum(found.values()) != source.total:
            return False
        for status, rows in found.items():
            summary.counts["unchanged" if status == "done" else status] += rows
        summary.seconds = time.perf_counter() - started
        return True

    def _ordinary(self, source: RowSource, every_cell: bool = True) -> OrdinaryBatches | None:
        """The run's ordinary rows planned in bulk (see `columnar`), when the run can: the local
        sink on SQLite, an export DuckDB reads, and a config of the shape `ColumnarPlan` computes."""
        if not self.bulk or self.bind is None or self.sink.name != "local":
            return None
        if self.store.engine.dialect.name != "sqlite" or not source.columns:
            return None
        plan = ColumnarPlan.for_run(self, source.columns, self._build.reads)
        where = source.in_duckdb() if plan is not None else None
        return OrdinaryBatches(self, plan, where, every_cell) if where is not None else None

    def plan(
        self, source: RowSource, *, limit: int | None = None, progress: bool | None = None, examples: int = 3
    ) -> SyncPlan:
        """What `run` would do, applying and writing nothing: counts per action and category, and
        the first `examples` rows of each (the diff before the sync)."""
        plan = SyncPlan(examples=examples)
        self._build = body_builder(source.columns, self.template, self.default_event)
        self.digest, self.valid = None, {}

        def batch_plan(batch, build):
            self._run_batch(batch, build, dry=True)
            for row in batch:
                plan.add(row)

        self._each_batch(source, limit, progress, plan.summary, batch_plan)
        return plan

    def _each_batch(
        self,
        source: RowSource,
        limit,
        progress,
        summary: BackfillSummary,
        handle,
        ordinary=None,
        failures=None,
    ) -> None:
        from tqdm.auto import tqdm  # picks the notebook or terminal bar; loads on the first run

        started = time.perf_counter()
        self.sent = {}
        if progress is False:
            total = None  # no bar to show it on
        else:
            total = source.total if limit is None else min(limit, source.total or limit)
        bar = tqdm(
            total=total, unit="row", desc="backfill", disable=(not progress) if progress is not None else None
        )
        build = self._build  # made by `run` or `plan` for this source
        self.note = lambda text: bar.set_postfix_str(text, refresh=True)
        try:
            with _fewer_collections():
                batch: list[Row] = []
                bulk: list[OrdinaryRow | FailedRow] = []  # rows planned in bulk (see `columnar`)
                users: set[str] = set()  # the users `bulk` names
                bulk_size = self.batch_size

                def flush():
                    if batch and bulk:  # one transaction for both
                        first = min(batch[0].number, bulk[0].number)
                        handle(batch, build, lambda conn, now: ordinary.write(conn, bulk, now), first)
                    elif batch:
                        handle(batch, build)
                    elif bulk:
                        self._flush_ordinary(ordinary, bulk, summary)
                    if failures is not None:  # once the batch is kept
                        _write_failures(failures, batch, bulk)
                    bar.update(len(batch) + len(bulk))
                    bar.set_postfix(summary.postfix(), refresh=False)
                    batch.clear()
                    bulk.clear()
                    users.clear()

                items = ordinary.rows(source.rows) if ordinary is not None else source.rows()
                for taken, item in enumerate(items):
                    if limit is not None and taken >= limit:
                        break
                    if type(item) is OrdinaryRow:
                        bulk.append(item)
                        users.add(item.user_id)
                    elif type(item) is FailedRow:
                        bulk.append(item)  # it names no user
                    elif type(item) is OtherRow:
                        # The rows of a flush go per-row first: one naming a user an earlier row
                        # of `bulk` names waits for that row to be written.
                        if users and (item.group is EVERY or item.group in users):
                            flush()
                        batch.append(Row(item.number, item.cells))
                    else:
                        batch.append(Row(*item))
                    if len(batch) >= self.batch_size or len(bulk) >= bulk_size:
                        flush()
                        bulk_size = self.batch_size * ORDINARY_BATCHES
                if batch or bulk:
                    flush()
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            self._release_batch_connection()
            bar.close()
            summary.seconds = time.perf_counter() - started

    # -- one batch ----------------------------------------------------------------------

    @contextmanager
    def _kept(self, first: int) -> Iterator[None]:
        """A batch's transaction: a database error says which rows were not kept, and what to do."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot write the event log in {self.store!r}: {describe(exc)}; "
                f"the batch from row {first} was not kept, run the same backfill again"
            ) from exc

    def _flush(self, batch: list[Row], build, summary: BackfillSummary, also=None, first=None) -> None:
        with self._kept(first or batch[0].number):
            written = self._run_batch(batch, build, also=also)
        _count(summary, written)  # once committed
        for row in batch:
            summary.counts[row.status] += 1

    def _flush_ordinary(
        self, ordinary: OrdinaryBatches, rows: list[OrdinaryRow | FailedRow], summary: BackfillSummary
    ) -> None:
        conn = self._batch_connection()
        with self._kept(rows[0].number), conn.begin():
            written = ordinary.write(conn, rows, self.clock())
        self._checkpoints.committed()
        _count(summary, written)  # once committed

    def _run_batch(self, batch: list[Row], build, dry: bool = False, also=None) -> dict[str, int] | None:
        """Plan, apply and write one batch; `also(conn, now)` writes more in its transaction (a sink
        bound to the store's connection only), and what it returns is returned."""
        now = self.clock()
        written = None
        for row, event_id in zip(batch, new_event_ids(len(batch), now), strict=True):
            self._prepare(row, build, event_id)
        if dry:
            with self.store.engine.connect() as conn, conn.begin():
                memory = self._memory(conn, batch)
            self._compare(batch, memory, dry=True)
        elif self.bind is not None:
            conn = self._batch_connection()
            with conn.begin():
                memory = self._memory(conn, batch)
                bound = self.bind(conn)
                bound = BatchedUsers(bound, conn)
                bound.prefetch(identified_ids(batch, {} if self.full else memory))
                self.engine.sink = bound
                self._apply(batch, memory)
                bound.flush()
                self._write(conn, batch, now)
                if also is not None:
                    written = also(conn, now)
            self._checkpoints.committed()
        else:
            with self.store.engine.begin() as conn:
                memory = self._memory(conn, batch)
            sink = self.sink
            if self.bulk and sink.bulk:
                from .knock import BulkKnock  # the SDK loads only when Knock is the sink

                sink = BulkKnock(sink, note=self.note)
            self.engine.sink = sink
            self._apply(batch, memory)
            if sink is not self.sink:
                settle(batch, sink.flush())
            with self.store.engine.begin() as conn:
                self._write(conn, batch, now)
        return written

    def _batch_connection(self):
        """The one connection a run's batches take turns on (with a transactional sink). On SQLite
        it gets a page cache of BACKFILL_CACHE_KIB, which then holds the indexes a backfill
        touches all over from one batch to the next, and checkpoints of the write-ahead log every
        BACKFILL_CHECKPOINT_BYTES instead of every few batches (each one waits for the disk),
        which `store.checkpoints` runs beside the batches as they commit. None of it changes what
        a commit guarantees."""
        if self._batch_conn is None:
            conn = self.store.engine.connect()
            self._batch_restore = tune_for_batches(conn, BACKFILL_CACHE_KIB, BACKFILL_CHECKPOINT_BYTES)
            self._checkpoints = checkpoints_for(conn)
            self._batch_conn = conn
        return self._batch_conn

    def _release_batch_connection(self) -> None:
        """Back to the pool with SQLite's settings as they were, so that whoever takes it next
        (an embedded receiver in the same kernel) does not keep a backfill's cache and log size."""
        conn, self._batch_conn = self._batch_conn, None
        if conn is None:
            return
        checkpoints, self._checkpoints = self._checkpoints, Checkpoints()
        checkpoints.close()
        restore, self._batch_restore = self._batch_restore, {}
        try:
            if restore and not conn.invalidated:
                set_pragmas(conn, restore)
        finally:
            conn.close()


def _write_failures(writer: FailureWriter, batch: list[Row], bulk: list) -> None:
    """A kept batch's failed rows to the failures file, in export order: those of the per-row
    path and those that failed in bulk."""
    failed = [row for row in batch if row.status in FAILURE_STATUSES]
    failed += [row for row in bulk if type(row) is FailedRow]
    for row in sorted(failed, key=attrgetter("number")):
        writer.write(row)


def _count(summary: BackfillSummary, written: dict[str, int] | None) -> None:
    """Add the rows a batch wrote in bulk, per category, to the run's counts."""
    for category, count in (written or {}).items():
        summary.counts[category] += count


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

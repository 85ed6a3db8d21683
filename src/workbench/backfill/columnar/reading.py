"""DuckDB reading an export for the plan, a thread ahead of the run: ordinary rows, failed rows and
the others, in export order (see the package)."""

from __future__ import annotations

import hashlib
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import duckdb

from ...clay.loading import quote
from ..fingerprints import csv_from
from .plan import ORDINARY, ColumnarPlan

# Rows a fetch takes. DuckDB makes a fetch's Python objects holding Python's lock, which the run's
# writing thread needs between its SQLite statements: a small fetch hands it back sooner
# (`bench/backfill.py` (c), alternating: 2,000 rows a fetch 1.08–1.20 s, 200 rows 1.02–1.07 s).
FETCH = 256
AHEAD = 4  # chunks of FETCH rows computed ahead of the run
# DuckDB's share of a run: its buffers (the CSV reader's above all) within this memory, on this
# many threads (the run's own thread writes meanwhile), so a big export keeps a small footprint.
DUCKDB_MEMORY = "128MB"
CSV_BUFFER = 4 << 20
DUCKDB_THREADS = 2


@dataclass(slots=True)
class OrdinaryRow:
    number: int
    user_id: str
    record: str  # the user's record (JSON text): what the local sink merges
    payload_hash: str
    memory_key: str
    fingerprint: str
    target: int  # the target cut to 64 bits, as a run tracks what it sent (`Backfill.sent`)
    sent: int  # the payload hash, cut alike


@dataclass(slots=True)
class FailedRow:
    """A row whose user id is blank and every other cell read ordinary: its identify fails, as the
    engine fails it (`ColumnarPlan.failure`, `.reason`), and the log keeps it whole. Its body and payload
    are JSON text; `key` is its idempotency key (the hash of its body); `cells` (given only when
    the run writes a failures file) and `reason` are what the failures file writes."""

    number: int
    body: str
    payload: str
    key: str
    fingerprint: str
    cells: list[Any] | None
    reason: str
    status: ClassVar[str] = "failed"


# The `group` of a row that may name any user.
EVERY = object()


@dataclass(slots=True)
class OtherRow:
    """A row for the per-row path: its number, cells, and `_group` key of the user it may name
    (EVERY when it is not known)."""

    number: int
    cells: list[Any]
    group: str | None


class DuckSource:
    """Where DuckDB reads an export's rows: `sql`, a FROM clause giving the columns as c0, c1…
    (and the row number as `n` when `numbered`; else rows come in order, numbered from 1),
    `connect()`, a DuckDB connection to run it on, and `pointer()`, what a batch's log entry
    names as the rows' place."""

    def __init__(self, sql: str, connect: Callable[[], Any], numbered: bool, pointer: Callable[[], dict]):
        self.sql, self.connect, self.numbered, self.pointer = sql, connect, numbered, pointer


def csv_source(path: str | os.PathLike, columns: Sequence[str]) -> DuckSource:
    """A CSV export, read by a DuckDB of its own as `ExportReader` reads it; batch entries name
    its path and SHA-256 (taken
    in a thread of its own meanwhile: hashlib lets go of Python's lock)."""
    digest: list[str] = []
    hashing = threading.Thread(target=lambda: digest.append(file_sha256(path)), daemon=True)
    hashing.start()

    def pointer() -> dict:
        hashing.join()
        if not digest:
            raise OSError(f"cannot read {os.fspath(path)!r} to take its SHA-256")
        return {"export": os.fspath(path), "sha256": digest[0]}

    def connect():
        return duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "threads": DUCKDB_THREADS})

    # Read in buffers of CSV_BUFFER bytes: the first rows come sooner and take less memory than
    # with DuckDB's default (a longer row makes DuckDB fail, and the export reader takes over).
    return DuckSource(csv_from(path, len(columns), buffer_size=CSV_BUFFER), connect, False, pointer)


def table_source(con: Any, table: str, columns: Sequence[str]) -> DuckSource:
    """A table `workbench load` filled, read in `_row_number` order on a cursor of `con` (its
    database's settings); batch entries name the table."""
    picks = ", ".join(f"{quote(c)} AS c{i}" for i, c in enumerate(columns))
    sql = f"(SELECT _row_number AS n, {picks} FROM {quote(table)} ORDER BY _row_number)"
    return DuckSource(sql, con.cursor, True, lambda: {"table": table})


def _all(cells: list | None) -> list:
    return ["" if c is None else c for c in cells or ()]


def _spread(width: int, reads: Sequence[int]) -> Callable[[list | None], list]:
    """Cells given for the columns `reads` only, as a row of `width` cells (blank elsewhere)."""

    def spread(cells: list | None) -> list:
        row = [""] * width
        for i, c in zip(reads, cells or (), strict=False):
            if c is not None:
                row[i] = c
        return row

    return spread


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class ColumnarRows:
    """The rows of an export as `ColumnarPlan` splits them, streamed in export order:
    `OrdinaryRow`s, `FailedRow`s and `OtherRow`s. Should DuckDB fail to read the export (a line it cannot
    parse, memory), the rows it did not give come from `rows` (the source's own reading, which
    names a bad line precisely), every one for the per-row path."""

    def __init__(
        self,
        plan: ColumnarPlan,
        source: DuckSource,
        rows: Callable[[], Iterator] | None = None,
        every_cell: bool = True,
    ):
        self.plan, self.source, self.rows, self.every_cell = plan, source, rows, every_cell

    def __iter__(self) -> Iterator[OrdinaryRow | FailedRow | OtherRow]:
        """DuckDB computes and converts the rows in a thread of its own, a few chunks ahead: the
        run writes a batch (SQLite, without Python's lock) while the next ones are computed."""
        chunks: queue.Queue = queue.Queue(maxsize=AHEAD)
        stop = threading.Event()
        con = self.source.connect()
        thread = threading.Thread(target=self._compute, args=(con, chunks, stop), daemon=True)
        thread.start()
        last = 0
        try:
            while (chunk := chunks.get()) is not None:
                if isinstance(chunk, duckdb.Error) and self.rows is not None:
                    for number, cells in self.rows():
                        if number > last:
                            yield OtherRow(number, cells, EVERY)
                    return
                if isinstance(chunk, BaseException):
                    raise chunk
                yield from chunk
                last = chunk[-1].number
        finally:
            stop.set()
            con.interrupt()
            while thread.is_alive():  # let it see `stop` even if it waits on a full queue
                try:
                    chunks.get_nowait()
                except queue.Empty:
                    thread.join(0.05)
            con.close()

    def _compute(self, con, chunks: queue.Queue, stop: threading.Event) -> None:
        try:
            every = self.every_cell
            cursor = con.execute(self.plan.query(self.source.sql, self.source.numbered, every))
            # Without every cell, the others' cells the template reads, where the per-row path reads them.
            cells_of = _all if every else _spread(len(self.plan.columns), self.plan.reads)
            # Rows come in the file's order (DuckDB preserves it where a query has no ORDER BY),
            # numbered from 1 as `ExportReader` numbers them, unless the source numbers them.
            numbers = itertools.count(1)
            reason = self.plan.reason
            while not stop.is_set() and (fetched := cursor.fetchmany(FETCH)):
                chunk = [
                    OrdinaryRow(
                        number or n,
                        who,
                        record,
                        digest,
                        key,
                        fingerprint,
                        int(target, 16),
                        int(digest[:16], 16),
                    )
                    if kind == ORDINARY
                    else OtherRow(number or n, cells_of(cells), who)
                    if kind is None
                    else FailedRow(
                        number or n, record, digest, key, fingerprint, cells and cells_of(cells), reason
                    )
                    # (`fetched` first: zip stops at its end without taking one more number)
                    for (kind, who, record, digest, key, fingerprint, target, cells, number), n in zip(
                        fetched, numbers, strict=False
                    )
                ]
                chunks.put(chunk)
            chunks.put(None)
        except BaseException as exc:  # handed to the run, which raises it
            chunks.put(exc)

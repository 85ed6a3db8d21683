"""Where backfill rows come from: a CSV export streamed from disk, or a table `workbench load` filled."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..clay import ExportReader, data_columns, quote
from .columnar import DuckSource, csv_source, table_source
from .fingerprints import BulkFingerprints


class RowSource:
    """Rows of an export, streamed: `columns` (as loaded), `header` (as exported), `rows()`, `total`."""

    columns: list[str]
    header: list[str]
    total: int | None = None

    def rows(self) -> Iterator[tuple[int, list[Any]]]:  # pragma: no cover - interface
        raise NotImplementedError

    def fingerprinted(self, reads: list[int]) -> BulkFingerprints | None:
        """Its rows fingerprinted in bulk (see `fingerprints`), when it can be."""
        return None

    def in_duckdb(self) -> DuckSource | None:
        """How DuckDB reads its rows, for rows planned in bulk (see `columnar`), when it can."""
        return None

    def close(self) -> None:
        pass


def estimate_rows(path: str | os.PathLike, chunk: int = 1 << 22) -> int:
    """The rows of a CSV export, counted without parsing it (for a progress bar's total): line
    ends after a closing quote when the file is quoted as Clay quotes every cell (a multi-line
    cell then counts once), else every line end; the header is not a row. Read in chunks, so a
    big export costs no memory."""
    with open(path, "rb") as f:
        head = f.readline()
        if not head:
            return 0
        quoted = head.removeprefix(b"\xef\xbb\xbf")[:1] == b'"' and head.rstrip(b"\r\n")[-1:] == b'"'
        # A file's rows end as its header does (one pattern to count: half the time of two).
        ends = ((b'"\r\n',) if head.endswith(b"\r\n") else (b'"\n',)) if quoted else (b"\n",)
        f.seek(0)
        count, tail, data = 0, b"", f.read(chunk)
        while data:
            # A line end cut by the chunk's edge is counted in tail + data; those in the tail were counted already.
            joined = tail + data
            count += sum(joined.count(e) - tail.count(e) for e in ends)
            tail, last = joined[-2:], data[-1:]
            data = f.read(chunk)
    return max(0, count + (last != b"\n") - 1)


class CsvRows(RowSource):
    """A Clay CSV export, read row by row; `total` is estimated (see `estimate_rows`)."""

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self.reader = ExportReader(path, allow_empty=True)
        self.columns = self.reader.columns
        self.header = self.reader.header
        self._total: int | None = None if self.columns else 0

    @property
    def total(self) -> int:  # counted when first asked (a run without a progress bar may never ask)
        if self._total is None:
            self._total = estimate_rows(self.path)
        return self._total

    def rows(self):
        return self.reader.rows()

    def fingerprinted(self, reads):
        return BulkFingerprints(self.columns, reads, csv=self.path) if self.columns else None

    def in_duckdb(self):
        return csv_source(self.path, self.columns) if self.columns else None

    def close(self) -> None:
        self.reader.close()


class TableRows(RowSource):
    """A table loaded by `workbench load`, read in `_row_number` order, a batch at a time."""

    def __init__(self, con, table: str, fetch: int = 2000):
        self.con, self.table, self.fetch = con, table, fetch
        self.columns = self.header = data_columns(con, table)
        self.total = con.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]

    def rows(self):
        picks = ", ".join(quote(c) for c in self.columns)
        cursor = self.con.execute(
            f"SELECT _row_number, {picks} FROM {quote(self.table)} ORDER BY _row_number"
        )
        while chunk := cursor.fetchmany(self.fetch):
            for record in chunk:
                yield record[0], list(record[1:])

    def fingerprinted(self, reads):
        return BulkFingerprints(self.columns, reads, con=self.con, table=self.table)

    def in_duckdb(self):
        return table_source(self.con, self.table, self.columns)

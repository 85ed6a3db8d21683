"""Where backfill rows come from: a CSV export streamed from disk, or a table `workbench load` filled."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..clay import ExportReader, data_columns, quote


class RowSource:
    """Rows of an export, streamed: `columns` (as loaded), `header` (as exported), `rows()`, `total`."""

    columns: list[str]
    header: list[str]
    total: int | None = None

    def rows(self) -> Iterator[tuple[int, list[Any]]]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class CsvRows(RowSource):
    """A Clay CSV export, read row by row."""

    def __init__(self, path: str | os.PathLike):
        self.reader = ExportReader(path, allow_empty=True)
        self.columns = self.reader.columns
        self.header = self.reader.header

    def rows(self):
        return self.reader.rows()

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

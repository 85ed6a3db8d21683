"""A Clay export table in DuckDB, read the way the designer needs it: sample rows for the
preview, and whole columns (fetched once) for the failure counts over every row."""

from __future__ import annotations

from typing import Any

import duckdb

from ..clay import META_COLUMNS, quote
from ..errors import WorkbenchError


def list_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]


class ExportTable:
    """One table of a DuckDB database: its columns, row count, sample rows and cached columns."""

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str):
        self.con = con
        self.name = name
        try:
            described = con.execute(f"DESCRIBE {quote(name)}").fetchall()
            self.rows = con.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]
        except duckdb.Error as exc:
            known = ", ".join(list_tables(con)) or "none"
            raise WorkbenchError(
                f"cannot read table `{name}` from DuckDB ({exc}); tables in this database: {known}. "
                "Load an export first with workbench.clay.load_export or `workbench load`."
            ) from None
        names = [r[0] for r in described]
        # The export's own columns; the loader's bookkeeping columns are not Clay's.
        self.columns: list[str] = [c for c in names if c not in META_COLUMNS]
        self._order = " ORDER BY _row_number" if "_row_number" in names else self._row_order()
        self._cells: dict[str, list[Any]] = {}

    def _row_order(self) -> str:
        try:
            self.con.execute(f"SELECT rowid FROM {quote(self.name)} LIMIT 0")
        except duckdb.Error:
            return ""  # a view has no rowid; its own order is kept
        return " ORDER BY rowid"

    def sample(self, n: int) -> list[dict[str, Any]]:
        """The first `n` rows, as {column: cell}."""
        picks = ", ".join(quote(c) for c in self.columns)
        cursor = self.con.execute(f"SELECT {picks} FROM {quote(self.name)}{self._order} LIMIT {int(n)}")
        return [dict(zip(self.columns, row, strict=True)) for row in cursor.fetchall()]

    def cells(self, column: str) -> list[Any]:
        """Every cell of `column` in row order (fetched once, then cached)."""
        cached = self._cells.get(column)
        if cached is None:
            if column not in self.columns:
                raise WorkbenchError(
                    f"table `{self.name}` has no column {column!r}; its columns are: {', '.join(self.columns)}"
                )
            cursor = self.con.execute(f"SELECT {quote(column)} FROM {quote(self.name)}{self._order}")
            cached = self._cells[column] = [row[0] for row in cursor.fetchall()]
        return cached

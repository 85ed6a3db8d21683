"""Loading Clay exports into DuckDB: every cell as text, plus where each row came from."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from .bodies import META_COLUMNS, snake_case
from .reading import ExportError, ExportReader

BATCH_ROWS = 10_000


def quote(name: str) -> str:
    """A DuckDB identifier, quoted (Clay headers have spaces, dots and quotes)."""
    return '"' + name.replace('"', '""') + '"'


def table_name_for(path: str | os.PathLike) -> str:
    """The default table for an export: its file name in snake_case (`Leads Q3.csv` → `leads_q3`)."""
    name = snake_case(Path(path).stem) or "export"
    return name if re.match(r"[a-z_]", name) else f"export_{name}"


@dataclass(frozen=True)
class LoadedExport:
    table: str
    rows: int
    columns: int
    source_file: str

    def to_dict(self) -> dict:
        return {"table": self.table, "rows": self.rows, "columns": self.columns}


def _existing_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str] | None:
    found = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "AND table_schema = current_schema() ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in found] or None


def load_export(
    path: str | os.PathLike, con: duckdb.DuckDBPyConnection, table: str | None = None
) -> LoadedExport:
    """Load a Clay CSV export into `table` (default: from the file name) of a DuckDB connection.

    Every cell is VARCHAR exactly as exported (blank cells are NULL), headers are kept verbatim
    (repeated ones get " (2)"), and `_row_number`, `_source_file`, `_loaded_at` are added.
    Loading the same file again replaces its rows instead of adding them twice.
    Raises `ExportError` naming the line when the file is not a Clay-like CSV.
    """
    path = Path(path)
    table = table or table_name_for(path)
    source_file = str(path.resolve())
    loaded_at = datetime.now(UTC)
    with ExportReader(path) as reader:
        columns = reader.columns
        clash = [c for c in columns if c.casefold() in META_COLUMNS]
        if clash:
            raise ExportError(
                f"{path}: column {clash[0]!r} is a name the workbench adds itself; rename it in Clay"
            )
        all_columns = [*columns, *META_COLUMNS]
        con.execute("BEGIN TRANSACTION")
        try:
            existing = _existing_columns(con, table)
            if existing is not None and existing != all_columns:
                others = (
                    con.execute(
                        f"SELECT count(*) FROM {quote(table)} WHERE _source_file IS DISTINCT FROM ?",
                        [source_file],
                    ).fetchone()[0]
                    if "_source_file" in existing
                    else 1
                )
                if others:
                    raise ExportError(
                        f"table `{table}` already holds rows with other columns; "
                        f"load {path.name} into another table (--table NAME)"
                    )
                con.execute(f"DROP TABLE {quote(table)}")
                existing = None
            if existing is None:
                defs = ", ".join(f"{quote(c)} VARCHAR" for c in columns)
                con.execute(
                    f"CREATE TABLE {quote(table)} ({defs}{', ' if defs else ''}"
                    "_row_number BIGINT, _source_file VARCHAR, _loaded_at TIMESTAMPTZ)"
                )
            else:
                con.execute(f"DELETE FROM {quote(table)} WHERE _source_file = ?", [source_file])
            rows = 0
            batch: list[list] = []
            for number, cells in reader.rows():
                batch.append([*(c if c else None for c in cells), number])
                if len(batch) >= BATCH_ROWS:
                    rows += _insert(con, table, columns, batch, source_file, loaded_at)
                    batch = []
            rows += _insert(con, table, columns, batch, source_file, loaded_at)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return LoadedExport(table, rows, len(columns), source_file)


def _insert(con, table, columns, batch, source_file, loaded_at) -> int:
    if not batch:
        return 0
    import pandas as pd  # loaded when an export is, not by every import of the package

    # Positional names: pandas needs unique labels, and Clay headers may collide once stripped.
    frame = pd.DataFrame(batch, columns=[f"c{i}" for i in range(len(columns))] + ["n"], dtype=object)
    frame["n"] = frame["n"].astype("int64")
    con.register("_workbench_batch", frame)
    try:
        picks = ", ".join(f"CAST(c{i} AS VARCHAR)" for i in range(len(columns)))
        con.execute(
            f"INSERT INTO {quote(table)} SELECT {picks}{', ' if picks else ''}n, ?, ? FROM _workbench_batch",
            [source_file, loaded_at],
        )
    finally:
        con.unregister("_workbench_batch")
    return len(batch)


def data_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The export columns of a loaded table (without the workbench's own)."""
    columns = _existing_columns(con, table)
    if columns is None:
        raise ExportError(
            f"no table `{table}` in this DuckDB database; load an export first (`workbench load`)"
        )
    return [c for c in columns if c not in META_COLUMNS]

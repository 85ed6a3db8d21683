"""A re-run compared in bulk: row fingerprints, computed by Python as a run stores them and by
DuckDB over the whole export when a re-run compares them.

A row's *fingerprint* is the MD5 of the cells its body is built from (the columns the body
template reads, or every column without one), each cell written as its length, `:` and its text
(a blank cell as NUL), joined by the unit separator. Two rows with one fingerprint give the same
body, so under the same config the same plan: a row whose outcome did not depend on anything
outside it (every action applied or unchanged, or skipped, invalid or failed before anything was
sent) is remembered with its fingerprint under the config's digest (`config_digest`: the whole
config, the environment, the run's event and headers; `store.applied`), and a re-run of that
config counts it as it ended without planning it again, as long as the targets it applied still
hold what it applied (see `store.applied.valid_rows`). The digest is kept beside the
fingerprint, not in it: a run under another config applies a row's targets under the same
fingerprint, so the database has nothing to forget for them (`schema.APPLIED_ROWS_TRIGGERS`).

`row_fingerprint` (Python, one row) and `BulkFingerprints` (DuckDB, every row) compute the same
text and hash it the same way; a cell that is not text (a typed DuckDB table) gives no
fingerprint, so such rows are never remembered.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import duckdb

from ..clay.loading import quote
from ..jsontext import compact_json

FORMAT = "fingerprint/2"
_SEPARATOR = "\x1f"
_BLANK = "\x00"


def config_digest(config: Any, environment: str, event: str | None, headers: Mapping[str, str] | None) -> str:
    """What a row's outcome depends on besides its cells: the whole config as written, the
    environment, the run's --event and headers, and the workbench's version."""
    try:
        version = metadata.version("clay-knock-workbench")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        version = "source"
    parts = [FORMAT, version, config.raw, environment, event, dict(headers or {})]
    return hashlib.sha256(compact_json(parts, sort_keys=True)).hexdigest()


def row_fingerprint(cells: Sequence[Any], reads: Sequence[int]) -> str | None:
    """The fingerprint of one row's `cells` (the positions `reads`); None when a cell read is not text."""
    parts = [FORMAT]
    for i in reads:
        cell = cells[i]
        if not cell:
            parts.append(_BLANK)
        elif type(cell) is str:
            parts.append(f"{len(cell)}:{cell}")
        else:
            return None
    return hashlib.md5(_SEPARATOR.join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def sql_literal(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def csv_from(path: str | os.PathLike, width: int, **options: Any) -> str:
    """DuckDB's FROM clause reading a CSV export as `ExportReader` reads it (UTF-8, comma-separated,
    quoted with `"`, every cell text, a blank cell NULL), its `width` columns named c0, c1…;
    `options`: more of `read_csv`'s, e.g. `buffer_size`."""
    types = ", ".join(f"{sql_literal(f'c{i}')}: 'VARCHAR'" for i in range(width))
    more = "".join(f", {name} = {value}" for name, value in options.items())
    return (
        f"read_csv({sql_literal(os.fspath(path))}, header = true, delim = ',', quote = '\"', "
        f"escape = '\"', auto_detect = false, columns = {{{types}}}, "
        f"encoding = 'utf-8', strict_mode = true{more})"
    )


class BulkFingerprints:
    """Every row of an export fingerprinted by DuckDB and matched against remembered rows.

    `csv`: a CSV export's path (read as `ExportReader` reads it: UTF-8, comma-separated, quoted
    with `"`, every cell text, a blank cell NULL); or `con` and `table`: a table `workbench load`
    filled. `columns`: the export's columns in order; `reads`: the positions a body reads."""

    def __init__(
        self,
        columns: Sequence[str],
        reads: Sequence[int],
        *,
        csv: str | os.PathLike | None = None,
        con: Any = None,
        table: str | None = None,
    ):
        self.columns, self.reads = list(columns), list(reads)
        self.csv, self.con, self.table = csv, con, table

    def _rows(self) -> tuple[str, list[str]]:
        """The FROM clause and the read columns' names in it."""
        if self.csv is not None:
            return csv_from(self.csv, len(self.columns)), [f"c{i}" for i in self.reads]
        return quote(self.table), [self.columns[i] for i in self.reads]

    def expression(self, names: Sequence[str]) -> str:
        cells = [
            f"CASE WHEN {q} IS NULL OR {q} = '' THEN chr(0) ELSE concat(length({q}), ':', {q}) END"
            for q in map(quote, names)
        ]
        return f"md5(concat_ws(chr(31), {', '.join([sql_literal(FORMAT), *cells])}))"

    def match(self, remembered: Mapping[str, str]) -> dict[str | None, int]:
        """{remembered status: rows of the export with a fingerprint remembered so}; None counts
        the rows remembered under no fingerprint (those a re-run must plan)."""
        source, names = self._rows()
        query = (
            "WITH remembered AS (SELECT unnest($1::VARCHAR[]) AS fp, unnest($2::VARCHAR[]) AS status), "
            f"fingerprinted AS (SELECT {self.expression(names)} AS fp FROM {source}) "
            "SELECT r.status, count(*) FROM fingerprinted f LEFT JOIN remembered r USING (fp) GROUP BY r.status"
        )
        return dict(self._fetch(query, [list(remembered), list(remembered.values())]))

    def fingerprints(self) -> list[str]:
        """Every row's fingerprint, in the order DuckDB reads them (for tests)."""
        source, names = self._rows()
        return [fp for (fp,) in self._fetch(f"SELECT {self.expression(names)} FROM {source}")]

    def _fetch(self, query: str, params: list | None = None) -> list[tuple]:
        """The rows of `query`, on the connection given, or on one of its own for a CSV."""
        con = self.con if self.con is not None else duckdb.connect()
        try:
            return con.execute(query, params).fetchall()
        finally:
            if self.con is None:
                con.close()

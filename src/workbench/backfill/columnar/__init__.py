"""Rows planned in bulk: DuckDB computes what the engine would for the ordinary rows of an export.

For the most common shape of config (Knock's Clay default: the body built from columns by the
template with a literal event, and one `users_identify` mapping whose params are `body.<key>`
paths, literals, templates and `properties: "body"`), a row's whole plan is a function of its
cells that SQL can compute: the body, the payload and its hash, the row's identity, the memory
key of its target, the user's record and the row's fingerprint (`fingerprints`). `ColumnarRows`
has DuckDB compute them as it streams the export, and hands the run three kinds of rows, in
export order:

- *ordinary* rows (`OrdinaryRow`): every cell read is blank, a failure mark, `✅ text`, or text
  that starts and ends with no white space and holds no control character but tab and line
  ends; numbers are plain integers; the user id is present and valid for Knock. For those, SQL
  gives byte for byte what `clay.body_builder`, the `Engine` and `targets` give
  (`tests/backfill/test_columnar.py` holds the two paths equal on generated exports);
- *failed* rows (`FailedRow`): every cell read is as for an ordinary row, but the user id is
  blank or a failure mark. The engine fails their identify for want of an `id` whatever the rest
  holds; SQL gives their body and payload as JSON text in the engine's order, and the batch logs
  each one whole (its own event, with the engine's reason), to be shown and replayed, and
  remembers it as `failed`, as the per-row path does;
- every other row (`OtherRow`), with its cells, for the runner's per-row path.

Without a failures file, which writes every cell of a row that fails, DuckDB reads only the
columns the template reads (the per-row path reads no other): the others are not materialized.

`OrdinaryBatches.write` then applies a batch of ordinary rows by the run's rules (what the run
sent, the memory, which row holds a target) and writes it with a few statements: the users
merged, what each row applied remembered, and one entry in the event log standing for the batch
(a pointer to the rows: the export's path and SHA-256, or the table, and the row numbers; see
`engine.events.BATCH_BODY`), beside the entries of its failed rows. Rows naming one user are applied in export order whichever path takes them (the runner writes the
pending ordinary rows before a per-row row that may name one of their users).

Used only on a SQLite store with the local sink, for a whole export DuckDB reads (a CSV file or
a loaded table: `RowSource.in_duckdb`; no `--limit`, no `--no-bulk`), and only when
`ColumnarPlan.for_run` finds the config of that shape; otherwise (and within `disabled()`, or
without this module) every row takes the per-row path, with the same results.
"""

from .plan import ColumnarPlan, disabled
from .reading import (
    EVERY,
    ColumnarRows,
    DuckSource,
    FailedRow,
    OrdinaryRow,
    OtherRow,
    csv_source,
    table_source,
)
from .writing import OrdinaryBatches

__all__ = [
    "EVERY",
    "ColumnarPlan",
    "ColumnarRows",
    "DuckSource",
    "FailedRow",
    "OrdinaryBatches",
    "OrdinaryRow",
    "OtherRow",
    "csv_source",
    "disabled",
    "table_source",
]

"""Column profiles of a loaded export: how full each column is and what it holds."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

import duckdb

from .bodies import FAILURE_MARKS, SUCCESS_MARKS
from .loading import data_columns, quote

KINDS = ("empty", "json_object", "clay_status", "email", "url", "phone", "number", "text")
SAMPLE = 200
HEAD = 1000  # rows read at once for every column's sample
SHARE = 0.9  # of the sampled non-empty cells that must match for a column to get a kind

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}\Z")
_URL = re.compile(r"(https?://|www\.)\S+\Z", re.I)
_PHONE = re.compile(r"\+?[\d\s().-]{7,24}\Z")
# No leading zeros: "00123" is a code to keep as text, not a number.
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?\Z")
_MARKS = SUCCESS_MARKS + FAILURE_MARKS + ("⚠️", "⚠", "⏳", "🟢", "🟡", "🔴")


@dataclass(frozen=True)
class ColumnProfile:
    column: str
    non_empty: float  # share of rows with a non-blank cell
    distinct: int
    examples: tuple[str, ...]
    kind: str

    def to_dict(self) -> dict:
        return asdict(self)


def _is_json_object(text: str) -> bool:
    if not text.startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _is_phone(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    return bool(_PHONE.match(text)) and 7 <= digits <= 15 and (text.startswith("+") or not text.isdigit())


def _unmarked(text: str) -> str:
    for mark in SUCCESS_MARKS:
        if text.startswith(mark):
            return text[len(mark) :].strip()
    return text


_TESTS = (
    ("json_object", _is_json_object),
    ("clay_status", lambda t: t.startswith(_MARKS)),
    ("email", lambda t: bool(_EMAIL.match(t))),
    ("url", lambda t: bool(_URL.match(t))),
    ("phone", _is_phone),
    ("number", lambda t: bool(_NUMBER.match(t))),
)


def detect_kind(values: list[str]) -> str:
    """The kind most of `values` (non-empty cells) share, else `text`; `empty` when none."""
    values = [v.strip() for v in values if v and v.strip()]
    if not values:
        return "empty"
    for kind, test in _TESTS[:2]:
        if sum(1 for v in values if test(v)) >= SHARE * len(values):
            return kind
    # A few cells marked found (`✅ jane@acme.com`) or not found (`❌ No email found`, which the
    # body leaves out) do not hide what the column holds.
    values = [_unmarked(v) for v in values if not v.startswith(FAILURE_MARKS)]
    if not values:
        return "clay_status"
    for kind, test in _TESTS[2:]:
        if sum(1 for v in values if test(v)) >= SHARE * len(values):
            return kind
    return "text"


def profile(con: duckdb.DuckDBPyConnection, table: str, examples: int = 3) -> list[ColumnProfile]:
    """One `ColumnProfile` per export column of `table`, in column order."""
    columns = data_columns(con, table)
    # Every column's fill and distinct counts in one scan of the table.
    tallies = ", ".join(
        f"count(*) FILTER (WHERE trim({quote(c)}) <> ''), count(DISTINCT {quote(c)})" for c in columns
    )
    counted = con.execute(
        f"SELECT count(*){', ' + tallies if tallies else ''} FROM {quote(table)}"
    ).fetchone()
    total = counted[0]
    # The first rows of every column at once; a sparse column reads its own first filled cells.
    picks = ", ".join(quote(c) for c in columns) or "1"
    head = con.execute(f"SELECT {picks} FROM {quote(table)} ORDER BY _row_number LIMIT {HEAD}").fetchall()
    out = []
    for n, column in enumerate(columns):
        q = quote(column)
        filled, distinct = counted[1 + 2 * n], counted[2 + 2 * n]
        sample = [v for v in (row[n] for row in head) if v is not None and v.strip()][:SAMPLE]
        if len(sample) < min(SAMPLE, filled):
            sample = [
                r[0]
                for r in con.execute(
                    f"SELECT {q} FROM {quote(table)} WHERE trim({q}) <> '' ORDER BY _row_number LIMIT {SAMPLE}"
                ).fetchall()
            ]
        seen: list[str] = []
        for value in sample:
            if value not in seen:
                seen.append(value)
            if len(seen) == examples:
                break
        out.append(
            ColumnProfile(
                column, filled / total if total else 0.0, distinct, tuple(seen), detect_kind(sample)
            )
        )
    return out


def profile_table(profiles: list[ColumnProfile]):
    """The profiles as a pandas table for people: fill rates as percentages (`92%`, as the CLI
    shows them), examples joined. Show it with `display.html.use_mathjax` off, so that `$591M,
    $224M` stays money and does not become maths."""
    import pandas as pd  # the clay extra: only where a table is made for people

    return pd.DataFrame(
        {
            "column": [p.column for p in profiles],
            "filled": [f"{p.non_empty:.0%}" for p in profiles],
            "distinct": [p.distinct for p in profiles],
            "kind": [p.kind for p in profiles],
            "examples": [" · ".join(p.examples) for p in profiles],
        }
    )

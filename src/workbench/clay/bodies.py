"""Export rows into bodies: what the Clay HTTP API column would POST for a row."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from ..errors import CoercionError
from ..paths import MISSING
from ..specs import coerce

DEFAULT_EVENT = "lead.enriched"
META_COLUMNS = ("_row_number", "_source_file", "_loaded_at")

# Clay's status marks: a success mark prefixes the value, a failure mark replaces it.
SUCCESS_MARKS = ("✅", "✔️", "✔", "☑️")
FAILURE_MARKS = ("❌", "✖️", "✖", "⛔", "🚫")
_MARK_STARTS = frozenset(mark[0] for mark in SUCCESS_MARKS + FAILURE_MARKS)


@lru_cache(maxsize=4096)
def snake_case(column: str) -> str:
    """`"Work Email"` → `work_email`, `"Find Work Email (2)"` → `find_work_email_2`."""
    text = unicodedata.normalize("NFKD", column)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def clean_cell(cell: Any) -> Any:
    """A cell's value as the body carries it: blank or a failure mark → MISSING, `✅ x` → `x`."""
    if cell is None:
        return MISSING
    if not isinstance(cell, str):
        return cell
    if not cell or cell.isspace():
        return MISSING
    first = cell[0]
    if first in "✅✔☑":
        for mark in SUCCESS_MARKS:
            if cell.startswith(mark):
                value = cell[len(mark) :].strip()
                return value if value else MISSING
    elif first in "❌✖⛔🚫":
        return MISSING
    return cell


def template_column(entry: Any) -> str | None:
    """The Clay column a body-template entry reads, if it reads one (None: a `{"value": V}`)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping) and isinstance(entry.get("column"), str):
        return entry["column"]
    return None


def _default_keys(columns: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    keys: list[tuple[str, str]] = []
    used: set[str] = set()
    for column in columns:
        if column in META_COLUMNS:
            continue
        base = snake_case(column) or "column"
        key, n = base, 1
        while key in used:
            n += 1
            key = f"{base}_{n}"
        used.add(key)
        keys.append((column, key))
    return tuple(keys)


_default_keys_cached = lru_cache(maxsize=64)(_default_keys)


def row_to_body(
    row: Mapping[str, Any], body_template: Mapping[str, Any] | None = None, default_event: str | None = None
) -> dict[str, Any]:
    """The body the HTTP API column would POST for `row` ({column: cell}).

    With a template: each body key from its column (status marks cleaned, blank cells left out,
    `{"column": C, "as": T}` coerced (`"region"` with e164), `{"value": V}` literal). Without one: every non-empty
    column under its snake_case name. `default_event` fills `event` when the body has none.
    Raises `CoercionError` naming the column when a cell cannot be read as its `as` type.
    """
    body: dict[str, Any] = {}
    if body_template is None:
        for column, key in _default_keys_cached(tuple(row)):
            value = clean_cell(row[column])
            if value is not MISSING:
                body[key] = value
    else:
        for key, spec in body_template.items():
            if isinstance(spec, str):
                column, as_ = spec, None
            elif "value" in spec:
                body[key] = spec["value"]
                continue
            else:
                column, as_ = spec["column"], spec.get("as")
            value = clean_cell(row.get(column))
            if value is MISSING:
                continue
            if as_ is not None:
                value = _coerced(value, as_, spec.get("region") if as_ == "e164" else None, column, key)
            body[key] = value
    if default_event is not None and "event" not in body:
        body["event"] = default_event
    return body


def _coerced(value: Any, as_: str, region: str | None, column: str, key: str) -> Any:
    """A cell read as its `as` type; the error names the column and the body key."""
    try:
        return coerce(value, as_, region)
    except CoercionError as exc:
        raise CoercionError(f"column `{column}` (body key `{key}`): {exc}", column=column) from None


def template_event(body_template: Mapping[str, Any] | None) -> str | None:
    """The literal event a template sets, if any."""
    spec = (body_template or {}).get("event")
    if isinstance(spec, Mapping) and "value" in spec and isinstance(spec["value"], str):
        return spec["value"]
    return None


def body_builder(
    columns: list[str], body_template: Mapping[str, Any] | None = None, default_event: str | None = None
) -> Callable[[list[Any]], dict[str, Any]]:
    """`row_to_body` compiled for one column layout: cells (a list, in `columns` order) → body.

    The same bodies, without a dict per row or a template walk per cell; for the backfill.
    """
    # (key, column index or None, literal, as, region); index None means the literal.
    steps: list[tuple[str, int | None, Any, str | None, str | None]] = []
    if body_template is None:
        index = {c: i for i, c in enumerate(columns)}
        steps = [(key, index[column], None, None, None) for column, key in _default_keys(tuple(columns))]
    else:
        index = {}
        for i, c in enumerate(columns):
            index.setdefault(c, i)
        for key, spec in body_template.items():
            column = template_column(spec)
            as_ = spec.get("as") if isinstance(spec, Mapping) else None
            region = spec.get("region") if as_ == "e164" else None
            if column is None:
                if isinstance(spec, Mapping) and "value" in spec:
                    steps.append((key, None, spec["value"], None, None))
            elif column in index:
                steps.append((key, index[column], column, as_, region))
    fills_event = any(step[0] == "event" for step in steps)
    # The cells a body depends on, in order: two rows equal in these give equal bodies.
    reads = tuple(sorted({i for _, i, *_ in steps if i is not None}))

    def build(cells: list[Any]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for key, i, extra, as_, region in steps:
            if i is None:
                body[key] = extra
                continue
            value = cells[i]
            # An ordinary cell is kept as it is: only blanks and Clay's marks need `clean_cell`.
            if type(value) is not str or not value or value[0] in _MARK_STARTS or value[0].isspace():
                value = clean_cell(value)
                if value is MISSING:
                    continue
            body[key] = value if as_ is None else _coerced(value, as_, region, extra, key)
        if default_event is not None and (not fills_event or "event" not in body):
            body["event"] = default_event
        return body

    build.reads = reads  # type: ignore[attr-defined]
    return build

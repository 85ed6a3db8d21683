"""Multi-row writes for the backfill's batches."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from sqlalchemy import JSON, DateTime

_PROCESSORS: dict[tuple, tuple] = {}
_ENCODER = msgspec.json.Encoder()


def _json_processor(fallback):
    """JSON text by msgspec (several times faster than json.dumps); anything it cannot encode
    goes the store's own way."""

    def process(value):
        try:
            return _ENCODER.encode(value).decode("utf-8")
        except (TypeError, msgspec.EncodeError, OverflowError):
            return fallback(value)

    return process


def _memo_processor(process):
    """One batch binds the same few datetimes thousands of times: convert each once."""
    memo: dict[Any, Any] = {}

    def convert(value):
        try:
            return memo[value]
        except KeyError:
            if len(memo) > 64:
                memo.clear()
            result = memo[value] = process(value)
            return result

    return convert


def insert_many(conn, table, rows: list[dict[str, Any]]) -> None:
    """A multi-row INSERT. On SQLite it goes straight to the driver's executemany, each value
    converted by its column's own bind processor (JSON encoded by msgspec), at a fraction of
    SQLAlchemy's per-row cost; elsewhere it is a plain Core executemany. Rows share their keys."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(table.insert(), rows)
        return
    names = tuple(rows[0])
    cache_key = (table.name, names, id(conn.dialect))
    cached = _PROCESSORS.get(cache_key)
    if cached is None:
        processors = []
        for name in names:
            column_type = table.c[name].type
            processor = column_type.bind_processor(conn.dialect)
            if isinstance(column_type, JSON) and processor is not None:
                processor = _json_processor(processor)
            elif processor is not None and DateTime in (
                type(column_type),
                type(getattr(column_type, "impl", None)),
            ):
                processor = _memo_processor(processor)
            processors.append(processor)
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        cached = _PROCESSORS[cache_key] = (tuple(zip(names, processors, strict=True)), sql)
    pairs, sql = cached
    # Column by column: one comprehension per column is far cheaper than a generator per row.
    columns = []
    for name, process in pairs:
        values = [row[name] for row in rows]
        columns.append(values if process is None else [None if v is None else process(v) for v in values])
    conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))


def body_text(body: Any) -> str:
    """A backfilled body as the event log keeps it: the JSON the HTTP API column would have sent."""
    try:
        return _ENCODER.encode(body).decode("utf-8")
    except (TypeError, msgspec.EncodeError, OverflowError):
        return json.dumps(body, ensure_ascii=False, default=str)

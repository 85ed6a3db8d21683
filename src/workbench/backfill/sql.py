"""Multi-row writes for the backfill's batches."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import JSON

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
            processors.append(processor)
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        cached = _PROCESSORS[cache_key] = (tuple(zip(names, processors, strict=True)), sql)
    pairs, sql = cached
    params = [
        tuple(v if p is None or v is None else p(v) for n, p in pairs for v in (row[n],)) for row in rows
    ]
    conn.exec_driver_sql(sql, params)

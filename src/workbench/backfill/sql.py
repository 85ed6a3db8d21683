"""Multi-row writes for the backfill's batches."""

from __future__ import annotations

from typing import Any

from ..store.fast import bind_processor

_PROCESSORS: dict[tuple, tuple] = {}


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
        processors = [bind_processor(table.c[name].type, conn.dialect) for name in names]
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        cached = _PROCESSORS[cache_key] = (tuple(zip(names, processors, strict=True)), sql)
    pairs, sql = cached
    # Column by column: one comprehension per column is far cheaper than a generator per row.
    columns = []
    for name, process in pairs:
        values = [row[name] for row in rows]
        columns.append(values if process is None else [None if v is None else process(v) for v in values])
    conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))

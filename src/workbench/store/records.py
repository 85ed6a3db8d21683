"""The local sink's recipient records (`local_users`, `local_objects`, `local_tenants`): one
record merged by its primary key, or a batch of new ones inserted. `Store.merge_record` and
`Store.insert_records` are the way in; the statements are `fast.Prepared`, built once a table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, select, update
from sqlalchemy.engine import Connection

from .fast import Prepared, bind_processor, insert_many

_STATEMENTS: dict[str, tuple[Prepared, Prepared, Prepared]] = {}


def _statements(table: Table) -> tuple[Prepared, Prepared, Prepared]:
    """(find data, insert, update data) for a record table, keyed by its primary key; built once."""
    found = _STATEMENTS.get(table.name)
    if found is None:
        keys = list(table.primary_key.columns)
        match = and_(*(col == bindparam(f"k_{col.name}", type_=col.type) for col in keys))
        found = _STATEMENTS[table.name] = (
            Prepared(select(table.c.data).where(match)),
            Prepared(table.insert().values({c.name: bindparam(c.name, type_=c.type) for c in table.c})),
            Prepared(
                update(table)
                .where(match)
                .values(
                    data=bindparam("new_data", type_=table.c.data.type),
                    updated_at=bindparam("new_updated_at", type_=table.c.updated_at.type),
                )
            ),
        )
    return found


def merge_record(
    conn: Connection,
    table: Table,
    keys: Mapping[str, Any],
    changes: dict[str, Any],
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    now: datetime,
) -> bool:
    """Insert the record with `changes` as its data, or replace its data with
    `merge(data, changes)`; True when the record is new."""
    find, insert, change = _statements(table)
    bound = {f"k_{name}": value for name, value in keys.items()}
    rows = find.fetchall(conn, bound)
    if not rows:
        insert.execute(conn, {**keys, "data": changes, "created_at": now, "updated_at": now})
        return True
    change.execute(conn, {**bound, "new_data": merge(rows[0][0] or {}, changes), "new_updated_at": now})
    return False


def insert_records(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """New records (their keys, `data`, `created_at`, `updated_at`), in one multi-row INSERT."""
    insert_many(conn, table, rows)


_PATCH = (
    "INSERT INTO {table} ({keys}, data, created_at, updated_at) VALUES ({marks}, ?, ?, ?) "
    "ON CONFLICT ({keys}) DO UPDATE SET data = json_patch({table}.data, excluded.data), "
    "updated_at = excluded.updated_at"
)


def patch_records(conn: Connection, table: Table, rows: list[tuple], now: datetime) -> None:
    """Records given as (their keys…, data as JSON text of an object of plain values: no null,
    no object), in one statement on SQLite: a new one gets the data, an existing one the data
    merged into its own (SQLite's `json_patch`, which for such data is `local.deep_merge`)."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":  # pragma: no cover - callers check
        raise NotImplementedError("patch_records runs on SQLite only")
    keys = [c.name for c in table.primary_key.columns]
    sql = _PATCH.format(table=table.name, keys=", ".join(keys), marks=", ".join("?" * len(keys)))
    stamp = bind_processor(table.c.created_at.type, conn.dialect)(now)
    conn.exec_driver_sql(sql, [(*row, stamp, stamp) for row in rows])

"""Hot statements run straight on the driver's cursor, compiled once per dialect.

The request path runs a handful of statements per event; SQLAlchemy's per-execution machinery
costs several times what SQLite itself does for them. `Prepared` keeps the portable Core
statement and SQLAlchemy's own type handling (each column type's bind and result processors),
compiles it once for the connection's dialect, and hands the SQL to the driver. Transactions
stay SQLAlchemy's: a `Prepared` runs inside the `Connection` it is given.

Used only inside `store/`, behind `Store` methods. `plain()` runs the same statements through
SQLAlchemy Core's own execution instead (the plain twin: `bench/sql.py` times the two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TypeEngine

from ..errors import StoreUnavailable
from ..jsontext import json_processor
from .db import _insert

_plain = False


@contextmanager
def plain() -> Iterator[None]:
    """Within it, `Prepared` and `insert_many` run their statements as SQLAlchemy Core runs them
    (`Connection.execute`, an executemany for several rows): the path this module short-cuts."""
    global _plain
    before, _plain = _plain, True
    try:
        yield
    finally:
        _plain = before


def _memo_processor(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A request binds one `now` to several columns, a batch binds a few datetimes thousands of
    times: convert each once. (A race between threads can only convert a value twice.)"""
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


def bind_processor(column_type: TypeEngine, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column type's own bind processor for `dialect` (a TypeDecorator's included); on
    SQLite, JSON goes through msgspec and repeated datetimes are converted once. Values are never
    None here."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None or dialect.name != "sqlite":
        return process
    if isinstance(column_type, JSON):
        return json_processor(process)
    if isinstance(column_type, DateTime) or isinstance(getattr(column_type, "impl", None), DateTime):
        return _memo_processor(process)
    return process


class Prepared:
    """One Core statement with named bind parameters, run on the DBAPI cursor."""

    def __init__(self, statement: ClauseElement):
        self.statement = statement
        self._compiled: dict[str, tuple] = {}

    def _for(self, conn: Connection) -> tuple:
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
            processors = {name: bind_processor(bind.type, dialect) for name, bind in compiled.binds.items()}
            columns = getattr(self.statement, "selected_columns", None)
            results = (
                [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
                if columns is not None
                else None
            )
            found = self._compiled[dialect.name] = (
                compiled.string,
                compiled.positional,
                names,
                processors,
                results,
            )
        return found

    def _params(self, positional: bool, names: list[str], processors, values: Mapping[str, Any]):
        out = []
        for name in names:  # in the statement's order; a name used twice appears twice
            value = values[name]
            process = processors.get(name)
            out.append(process(value) if process is not None and value is not None else value)
        return tuple(out) if positional else dict(zip(names, out, strict=True))

    def _cursor(self, conn: Connection):
        return conn.connection.dbapi_connection.cursor()

    def _wrap(self, conn: Connection, sql: str, exc: Exception) -> Exception:
        """The driver's error as SQLAlchemy would raise it; a lost connection as `StoreUnavailable`."""
        dialect = conn.dialect
        if not isinstance(exc, dialect.loaded_dbapi.Error):
            return exc
        if dialect.is_disconnect(exc, conn.connection.dbapi_connection, None):
            conn.invalidate(exc)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return StoreUnavailable(f"the event-log database is unavailable ({first}); try again shortly")
        return DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect)

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run once; returns the row count."""
        if _plain:
            return conn.execute(self.statement, dict(values)).rowcount
        sql, positional, names, processors, _ = self._for(conn)
        # Parameters are converted (JSON, dates) before BEGIN: on SQLite that takes the write lock.
        params = self._params(positional, names, processors, values)
        if not conn.in_transaction():  # SQLAlchemy's BEGIN (and its listeners) first
            conn.begin()
        cursor = self._cursor(conn)
        try:
            cursor.execute(sql, params)
            return cursor.rowcount
        except Exception as exc:
            raise self._wrap(conn, sql, exc) from exc
        finally:
            cursor.close()

    def executemany(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        if _plain:
            conn.execute(self.statement, [dict(r) for r in rows])
            return
        sql, positional, names, processors, _ = self._for(conn)
        params = [self._params(positional, names, processors, r) for r in rows]
        if not conn.in_transaction():
            conn.begin()
        cursor = self._cursor(conn)
        try:
            cursor.executemany(sql, params)
        except Exception as exc:
            raise self._wrap(conn, sql, exc) from exc
        finally:
            cursor.close()

    def fetchall(self, conn: Connection, values: Mapping[str, Any]) -> list[Sequence[Any]]:
        """Run a SELECT; rows as tuples with SQLAlchemy's result processing applied."""
        if _plain:
            return [tuple(r) for r in conn.execute(self.statement, dict(values))]
        sql, positional, names, processors, results = self._for(conn)
        params = self._params(positional, names, processors, values)
        if not conn.in_transaction():
            conn.begin()
        cursor = self._cursor(conn)
        try:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        except Exception as exc:
            raise self._wrap(conn, sql, exc) from exc
        finally:
            cursor.close()
        if results is None or not any(results):
            return [tuple(r) for r in rows]
        return [tuple(p(v) if p is not None else v for p, v in zip(results, r, strict=True)) for r in rows]


_PROCESSORS: dict[tuple, tuple] = {}


def _insert_statement(conn: Connection, table, names: tuple[str, ...]) -> tuple[list, str]:
    """(each column's bind processor, the INSERT's SQL) for these columns on SQLite, made once."""
    cache_key = (table.name, names, id(conn.dialect))
    cached = _PROCESSORS.get(cache_key)
    if cached is None:
        processors = [bind_processor(table.c[name].type, conn.dialect) for name in names]
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        cached = _PROCESSORS[cache_key] = (processors, sql)
    return cached


def insert_many(conn: Connection, table, rows: list[dict[str, Any]]) -> None:
    """A multi-row INSERT (the backfill's and write-behind's batches). On SQLite it goes straight
    to the driver's executemany, each value converted by its column's own bind processor (JSON
    encoded by msgspec), at a fraction of SQLAlchemy's per-row cost; elsewhere it is a plain Core
    executemany. Rows share their keys."""
    if not rows:
        return
    if _plain or conn.dialect.name != "sqlite":
        conn.execute(table.insert(), rows)
        return
    names = tuple(rows[0])
    processors, sql = _insert_statement(conn, table, names)
    conn.exec_driver_sql(sql, _by_columns(processors, ([row[name] for row in rows] for name in names)))


def insert_rows(conn: Connection, table, names: Sequence[str], rows: list[tuple]) -> None:
    """`insert_many` of rows given as tuples of the columns `names`."""
    if not rows:
        return
    names = tuple(names)
    if _plain or conn.dialect.name != "sqlite":
        conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])
        return
    processors, sql = _insert_statement(conn, table, names)
    conn.exec_driver_sql(sql, _converted(processors, rows))


_UPSERTS: dict[tuple, Any] = {}


def upsert_rows(conn: Connection, table, key: Sequence[str], names: Sequence[str], rows: list[tuple]) -> None:
    """INSERT … ON CONFLICT (`key`) DO UPDATE of every other column of `rows`, tuples of the
    columns `names` (the applied payloads and rows of a batch). On SQLite it goes to the driver's
    executemany as `insert_many` does; elsewhere (and under `plain()`) it is the
    dialect's Core statement, built once (a statement built per batch would leave reference
    cycles behind, which a backfill lets the collector free only rarely)."""
    if not rows:
        return
    names = tuple(names)
    cache_key = (table.name, tuple(key), names, id(conn.dialect), _plain)
    cached = _UPSERTS.get(cache_key)
    if cached is None:
        updated = [n for n in names if n not in key]
        if conn.dialect.name == "sqlite" and not _plain:
            sets = ", ".join(f"{n} = excluded.{n}" for n in updated)
            sql = (
                f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
            )
            processors = [bind_processor(table.c[name].type, conn.dialect) for name in names]
            cached = (sql, processors)
        else:
            insert = _insert(conn, table)
            upsert = insert.on_conflict_do_update(
                index_elements=list(key), set_={n: insert.excluded[n] for n in updated}
            )
            cached = (upsert, None)
        _UPSERTS[cache_key] = cached
    statement, processors = cached
    if processors is None:
        conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])
        return
    conn.exec_driver_sql(statement, _converted(processors, rows))


def _converted(processors, rows: list[tuple]) -> list[tuple]:
    """Driver-ready rows from tuples: each value converted by its column's processor."""
    if not any(processors):
        return rows
    return _by_columns(processors, zip(*rows, strict=True))


def _by_columns(processors, columns) -> list[tuple]:
    """The driver's parameter tuples from a batch's columns, each value converted by its column's
    bind processor. Column by column: one comprehension per column is far cheaper than a
    generator per row."""
    converted = [
        values if process is None else [None if v is None else process(v) for v in values]
        for process, values in zip(processors, columns, strict=True)
    ]
    return list(zip(*converted, strict=True))

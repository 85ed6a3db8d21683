"""Database connections: SQLite tuned for several processes, and portable upsert helpers."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from ..errors import StoreUnavailable, WorkbenchError
from ..jsontext import stored_json

BUSY_TIMEOUT_MS = 30_000
# Pages of 8 KiB: fewer B-tree pages to split and fewer WAL frames per logged row (~1 KB) than with
# SQLite's 4 KiB default, so a backfill's writes take about a third less time, while a commit of a
# single row writes little more. Only a new database takes it (SQLite keeps the page size a file
# was made with); existing stores stay as they are.
PAGE_SIZE = 8192
WAL_AUTOCHECKPOINT_BYTES = 16 * 1024 * 1024
POLL_SECONDS = 0.00005
# A database server that is down answers at once; one that is unreachable must not hang a request.
CONNECT_TIMEOUT_SECONDS = 5
READ = {"workbench_read": True}  # execution option: a read-only transaction on SQLite (plain BEGIN)
# Values per `IN (...)`: well under SQLite's and PostgreSQL's limits on bound parameters.
IN_CHUNK = 500

T = TypeVar("T")


def in_chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """`values` in slices of at most IN_CHUNK, one per `IN (...)` query."""
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


class StoreError(WorkbenchError):
    """The event-log database cannot be opened or used."""

    status = "store_error"


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"cannot read the store URL {url!r}; use e.g. sqlite:///data/workbench.sqlite "
            "or postgresql+psycopg://user:password@host/dbname"
        ) from None
    if parsed.drivername == "postgresql":  # psycopg 3 is the driver the project ships
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine; on SQLite: WAL, busy timeout and writes that take the lock up front."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(
            parsed,
            json_serializer=stored_json,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
        _report_unavailable(engine)
        return engine
    database = parsed.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if memory:
        engine = create_engine(
            parsed,
            json_serializer=stored_json,
            connect_args={"check_same_thread": False},
            poolclass=StaticPool,
        )
    else:
        # A URI filename (`sqlite:///file:/path/db.sqlite?mode=ro&uri=true`) is SQLite's to open as it
        # says; only a plain path gets its folder made.
        if not database.startswith("file:"):
            create_private(Path(database).expanduser().resolve())
        engine = create_engine(
            parsed,
            json_serializer=stored_json,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
    _tune_sqlite(engine, wal=not memory)
    return engine


def create_private(path: Path) -> None:
    """Make `path` (and its folder) if it does not exist yet, readable by its owner alone: an event
    log holds rows' bodies (names, emails). SQLite gives its -wal and -shm files the database
    file's mode; a file that exists already keeps its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass


def _report_unavailable(engine: Engine) -> None:
    """A database that cannot be reached raises `StoreUnavailable` (HTTP 503), whatever the call site."""

    @event.listens_for(engine, "handle_error")
    def on_error(context):
        # A failed pre-ping is the pool's to handle: it reconnects once the server is back.
        if context.is_pre_ping:
            return
        if not context.is_disconnect and server_gone(context.original_exception):
            context.is_disconnect = True  # the pool drops the connection, as for any disconnect
        if context.is_disconnect or context.connection is None:
            where = engine.url.render_as_string(hide_password=True)
            raise StoreUnavailable(
                f"the event-log database is unavailable ({_first_line(context.original_exception)}); "
                f"try again shortly (store {where})"
            ) from context.original_exception


# SQLSTATE classes of a server that went away: 08 (connection exception), 57P (the server shut
# down, crashed, or cannot take connections yet).
_GONE_STATES = ("08", "57P")


def server_gone(exc: BaseException | None) -> bool:
    """Whether the server went away under `exc`: a shutdown mid-statement can surface as another
    error (psycopg's "cannot exit pipeline mode while busy", which SQLAlchemy does not take for a
    disconnect), with the server's own one in its chain."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        state = getattr(exc, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_GONE_STATES):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def set_pragmas(conn: Connection, values: dict[str, int]) -> dict[str, int]:
    """Set SQLite PRAGMAs on the driver's connection under `conn` (outside any transaction);
    returns the values they had, to set back."""
    dbapi = conn.connection.dbapi_connection
    before = {name: dbapi.execute(f"PRAGMA {name}").fetchone()[0] for name in values}
    for name, value in values.items():
        dbapi.execute(f"PRAGMA {name} = {int(value)}")
    return before


def tune_for_batches(conn: Connection, cache_kib: int, checkpoint_bytes: int) -> dict[str, int]:
    """On SQLite, give `conn` a page cache of `cache_kib` and checkpoints of the write-ahead log
    every `checkpoint_bytes` (a long run of batches); returns the settings it had, for
    `set_pragmas` to put back. Elsewhere nothing changes ({})."""
    if conn.dialect.name != "sqlite":
        return {}
    pages = checkpoint_pages(conn.connection.dbapi_connection, checkpoint_bytes)
    return set_pragmas(conn, {"cache_size": -cache_kib, "wal_autocheckpoint": pages})


def checkpoint_pages(dbapi_connection, log_bytes: int) -> int:
    """`PRAGMA wal_autocheckpoint` (counted in pages) for a log of `log_bytes` in this database."""
    page_size = dbapi_connection.execute("PRAGMA page_size").fetchone()[0]
    return max(1, log_bytes // page_size)


def describe(exc: BaseException) -> str:
    """What the database said, without the statement and parameters SQLAlchemy adds to its
    message (a reply to Clay or a CLI error must not carry a batch of rows):
    `database or disk is full (sqlite3.OperationalError)`."""
    orig = getattr(exc, "orig", None) or exc
    kind = type(orig)
    return f"{_first_line(orig)} ({kind.__module__.split('.')[0]}.{kind.__name__})"


def _tune_sqlite(engine: Engine, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # The driver's own transaction handling is off; SQLAlchemy's "begin" below takes over.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _record.info["busy_timeout"] = BUSY_TIMEOUT_MS
        cursor.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before WAL, which writes the header
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a crashed process (not a power cut) at far fewer fsyncs.
            cursor.execute("PRAGMA synchronous = NORMAL")
            # Checkpoints wait for the disk (fsync); fewer, larger ones (16 MB of log) cost far less.
            pages = checkpoint_pages(dbapi_connection, WAL_AUTOCHECKPOINT_BYTES)
            cursor.execute(f"PRAGMA wal_autocheckpoint = {pages}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection):
        fairy = conn.connection
        if conn.get_execution_options().get("workbench_read"):
            _set_busy_timeout(fairy, BUSY_TIMEOUT_MS)
            conn.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(fairy)


def _set_busy_timeout(fairy, milliseconds: int) -> None:
    """Set SQLite's busy timeout on a pooled connection, unless it is set so already."""
    if fairy.info.get("busy_timeout") != milliseconds:
        fairy.dbapi_connection.execute(f"PRAGMA busy_timeout = {milliseconds}")
        fairy.info["busy_timeout"] = milliseconds


def _begin_immediate(fairy) -> None:
    """BEGIN IMMEDIATE: a writer takes the write lock up front, so two processes never deadlock
    upgrading a read lock. Waiting for the lock is done here in short steps: SQLite's own busy
    handler sleeps 1, 2, 5, 10… ms, far longer than the transactions it waits for.

    The connection's busy timeout stays 0 after this: once the write lock is held, nothing in the
    transaction waits on another connection, and the next write begins the same way. A read
    transaction sets it back first (see `on_begin`)."""
    _set_busy_timeout(fairy, 0)
    when_not_busy(fairy.dbapi_connection.execute, "BEGIN IMMEDIATE")


def when_not_busy(execute: Callable[..., T], *args) -> T:
    """`execute(*args)` on a SQLite connection whose busy timeout is 0, again in short steps while
    another connection holds the lock it needs, for up to the store's busy timeout."""
    started = None
    while True:
        try:
            return execute(*args)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            now = time.monotonic()
            started = started or now
            waited = now - started
            if waited >= BUSY_TIMEOUT_MS / 1000:
                raise
            # Other writers hold the lock for well under a millisecond: poll often at first.
            time.sleep(POLL_SECONDS if waited < 0.005 else min(0.002, waited / 8))


def _insert(conn: Connection, table: Table):
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    name = conn.dialect.name
    if name == "sqlite":
        insert = sqlite_insert
    elif name == "postgresql":
        insert = postgresql_insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise StoreError(f"unsupported database {name!r}; use SQLite or PostgreSQL")
    return insert(table)


def insert_ignoring_conflicts(
    conn: Connection, table: Table, values: dict, conflict: tuple[str, ...]
) -> bool:
    """INSERT that does nothing when `conflict` columns clash; True when the row went in."""
    statement = (
        _insert(conn, table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict))
        # RETURNING, not rowcount: PostgreSQL reports -1 for an INSERT that returns rows.
        .returning(table.c[conflict[0]])
    )
    return conn.execute(statement).first() is not None


def upsert(conn: Connection, table: Table, values: dict, conflict: tuple[str, ...], update: dict) -> None:
    """INSERT, or UPDATE `update` on the existing row when `conflict` columns clash."""
    statement = (
        _insert(conn, table)
        .values(**values)
        .on_conflict_do_update(index_elements=list(conflict), set_=update)
    )
    conn.execute(statement)

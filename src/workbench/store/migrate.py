"""Schema migrations with Alembic: every store upgrades its database to the newest revision on start.

Several processes may start at once (gunicorn workers, several receivers on one PostgreSQL): the
upgrade runs under a lock, a PostgreSQL advisory lock or SQLite's write lock (BEGIN IMMEDIATE),
so one of them migrates and the others find the database at the newest revision.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Connection, Engine

from .db import READ

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Its own name, so the event log can share a database with another application that uses Alembic.
VERSION_TABLE = "workbench_alembic_version"
# The revision that matches the tables created before migrations existed.
BASELINE = "0001"
# pg_advisory_xact_lock key: "workbenc" in ASCII, a fixed number no other application picks by chance.
ADVISORY_LOCK_KEY = 0x776F726B62656E63


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config for the shipped migrations, run on `connection` (or a new engine on `url`)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head() -> str:
    """The newest revision the package ships (read once per process)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(connection: Connection) -> str | None:
    """The database's revision (None when it has never been migrated)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(engine: Engine) -> bool:
    """Bring the database to the newest revision; True when something was migrated."""
    target = head()
    with engine.connect().execution_options(**READ) as conn, conn.begin():
        if current(conn) == target:
            return False
    with engine.begin() as conn:  # on SQLite this BEGIN IMMEDIATE already holds the write lock
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
        revision = current(conn)
        if revision == target:
            return False  # another process migrated while we waited for the lock
        config = alembic_config(conn)
        if revision is None and inspect(conn).has_table("events"):
            # Created by an earlier version with create_all: those tables are the baseline.
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
    return True

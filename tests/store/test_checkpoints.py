"""Checkpoints of SQLite's write-ahead log beside a run of batches (`store.checkpoints`): the log is
copied into the database file as the batches commit, and nothing committed changes."""

import shutil
import sqlite3
import time
from contextlib import closing

from sqlalchemy import create_engine, text

from workbench.store import Store, checkpoints
from workbench.store.checkpoints import BackgroundCheckpoints, Checkpoints, checkpoints_for


def _batches(conn, done: Checkpoints, batches: int, rows: int = 2000) -> None:
    conn.execute(text("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)"))
    conn.commit()
    for b in range(batches):
        with conn.begin():
            conn.execute(
                text("INSERT INTO t (k, v) VALUES (:k, :v)"),
                [{"k": b * rows + i, "v": "x" * 200} for i in range(rows)],
            )
        done.committed()


def _file_alone(path, tmp_path) -> sqlite3.Connection:
    """The database file as it is on disk, without its log: a copy of it alone."""
    alone = tmp_path / "alone.sqlite"
    shutil.copyfile(path, alone)
    return sqlite3.connect(alone)


def test_the_log_is_copied_as_batches_commit_and_every_row_is_kept(sqlite_url, tmp_path):
    store = Store(sqlite_url)
    path = tmp_path / "data" / "workbench.sqlite"
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint = 100000")  # SQLite's own would not run
        done = checkpoints_for(conn)
        assert isinstance(done, BackgroundCheckpoints)
        _batches(conn, done, 8)
        waited = time.monotonic()
        while done.done == 0 and time.monotonic() - waited < 10:
            time.sleep(0.01)
        done.close()
        assert done.done >= 1 and not done._thread.is_alive()
        # The file on disk holds whole batches already; with the log, every row.
        with closing(_file_alone(path, tmp_path)) as alone:
            copied = alone.execute("SELECT count(*) FROM t").fetchone()[0]
        assert copied > 0 and copied % 2000 == 0
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 16000
    store.close()
    with closing(sqlite3.connect(path)) as con:
        assert con.execute("SELECT count(*), min(k), max(k) FROM t").fetchone() == (16000, 0, 15999)


def test_without_them_the_file_waits_for_sqlites_own_checkpoint(sqlite_url, tmp_path):
    store = Store(sqlite_url)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint = 100000")
        _batches(conn, Checkpoints(), 8)
        with closing(_file_alone(tmp_path / "data" / "workbench.sqlite", tmp_path)) as alone:
            assert not alone.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchall()
    store.close()


def test_the_plain_kind_where_there_is_no_log_to_copy(tmp_path, sqlite_url):
    memory = Store("sqlite://")
    with memory.engine.connect() as conn:
        assert type(checkpoints_for(conn)) is Checkpoints
    memory.close()
    store = Store(sqlite_url)
    with store.engine.connect() as conn, checkpoints.disabled():
        assert type(checkpoints_for(conn)) is Checkpoints
    store.close()
    rollback = create_engine(f"sqlite:///{tmp_path / 'rollback.sqlite'}")  # SQLite's default journal
    with rollback.connect() as conn:
        assert type(checkpoints_for(conn)) is Checkpoints
    rollback.dispose()


def test_a_database_it_cannot_open_leaves_checkpoints_to_sqlite(tmp_path, sqlite_url):
    store = Store(sqlite_url)
    gone = BackgroundCheckpoints(str(tmp_path / "no-such-folder" / "x.sqlite"))
    with store.engine.connect() as conn:
        _batches(conn, gone, 2)
        gone.close()
        assert gone.done == 0 and conn.execute(text("SELECT count(*) FROM t")).scalar() == 4000
    store.close()

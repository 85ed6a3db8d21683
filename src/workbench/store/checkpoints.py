"""Checkpoints of SQLite's write-ahead log during a long run of batches (a backfill).

The plain way (`Checkpoints`): SQLite copies the log into the database file in the connection
that commits, once the log is `wal_autocheckpoint` pages long, and when the last connection
closes. A backfill's batch connection takes a long log (`tune_for_batches`), so the run commits
without stopping to checkpoint until its end, where the whole log is copied at once: a tenth of
a run's time on a big export, the run then doing nothing else.

`BackgroundCheckpoints` copies the log as it grows instead, in a thread of its own with a
connection of its own: after each commit it runs a passive checkpoint (`PRAGMA
wal_checkpoint(PASSIVE)`), which copies what is committed and takes no lock a writer or a reader
waits for. SQLite lets go of Python's lock while it copies and syncs, so the copy overlaps the
next batch. What a commit guarantees is unchanged: a checkpoint only moves committed pages from
the log to the database file. Should it fail (say, the file cannot be opened a second time), the
thread stops and SQLite checkpoints the plain way.

`checkpoints_for(conn)` gives the background kind for a SQLite database file in WAL mode, the
plain kind otherwise (and within `disabled()`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection

_enabled = True


@contextmanager
def disabled() -> Iterator[None]:
    """Within it, runs checkpoint the plain way (for tests and benchmarks)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


class Checkpoints:
    """SQLite's own checkpoints: nothing to do after a commit."""

    def committed(self) -> None:
        """A batch was committed."""

    def close(self) -> None:
        """The run is over."""


class BackgroundCheckpoints(Checkpoints):
    """Passive checkpoints of the database file at `path` after each commit, in a thread."""

    def __init__(self, path: str):
        self.path = path
        self._due = threading.Event()
        self._closing = False
        self.done = 0  # checkpoints run (for tests)
        self._thread = threading.Thread(target=self._run, name="workbench-checkpoints", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._due.set()

    def close(self) -> None:
        self._closing = True
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._closing:
                    return
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.done += 1
        except sqlite3.Error:
            return  # SQLite checkpoints the plain way
        finally:
            conn.close()


def checkpoints_for(conn: Connection) -> Checkpoints:
    """Background checkpoints for a SQLite database file in WAL mode; the plain kind otherwise."""
    if not _enabled or conn.dialect.name != "sqlite":
        return Checkpoints()
    dbapi = conn.connection.dbapi_connection
    if dbapi.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        return Checkpoints()
    path = next((file for _, name, file in dbapi.execute("PRAGMA database_list") if name == "main"), "")
    return BackgroundCheckpoints(path) if path else Checkpoints()

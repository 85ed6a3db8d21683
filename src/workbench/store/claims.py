"""The claim arbiter of the write-behind receivers on one SQLite store: who got an idempotency
key first, decided without a transaction in the event log.

A receiver that answers before it logs (`workbench.writebehind`) must still decide a key exactly
once across its processes before it answers. Deciding it in the event log costs a write
transaction per request, which waits behind the batches the writers commit there. The arbiter is a
small SQLite file beside the database (`<database>.receiver-claims`, WAL) that only holds, per
key, the event that claimed it first and how: one single-row upsert per request, in autocommit,
which no batch ever holds up. Like the journal, it survives a process that dies, not a machine
that stops: its commits are not synced to the disk (a sync at each checkpoint would cost more than
the claims). If the file cannot be used, keys are decided in the event log, by the writers.

A claim is either *answered* (the event's request settled its success and answers from the
claim: a later request with the key is a duplicate) or *deciding* (the event takes the ordinary
path, which decides in the event log: a later request with the key must wait for the log too).
Claims last the key's window (a deciding one at most `DECIDING_LEASE`); expired ones are taken
over and swept.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from .db import create_private, when_not_busy

DECIDING_LEASE = 15 * 60.0  # seconds: a deciding claim whose process died is taken over after this

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    source TEXT NOT NULL,
    environment TEXT NOT NULL,
    event_type TEXT NOT NULL,
    key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    answered INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (source, environment, event_type, key)
) WITHOUT ROWID
"""
_INDEX = "CREATE INDEX IF NOT EXISTS claims_expires ON claims (expires)"
# Take the key when it is free or expired; RETURNING says whether this event holds it now.
_CLAIM = """
INSERT INTO claims (source, environment, event_type, key, event_id, answered, expires)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, environment, event_type, key) DO UPDATE SET
    event_id = excluded.event_id, answered = excluded.answered, expires = excluded.expires
WHERE claims.expires <= ?
RETURNING event_id
"""
_SWEEP = """
DELETE FROM claims WHERE (source, environment, event_type, key) IN (
    SELECT source, environment, event_type, key FROM claims WHERE expires <= ? LIMIT ?
)
"""
SWEEP_CHUNK = 1000
_HOLDER = """
SELECT event_id, answered FROM claims
WHERE source = ? AND environment = ? AND event_type = ? AND key = ?
"""


@dataclass(frozen=True, slots=True)
class Holder:
    """Another event's claim on a key."""

    event_id: str
    answered: bool  # its request answered from the claim (else it decides in the event log)


class ClaimArbiter:
    """One process's connection to the arbiter file, opened on first use (again after a fork).
    Thread-safe: one statement at a time."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def claim(
        self,
        scope: tuple[str, str, str],
        key: str,
        event_id: str,
        now: float,
        seconds: float,
        answered: bool,
    ) -> Holder | None:
        """Claim `key` for `event_id` (`now`: epoch seconds; the claim lasts `seconds`). None when
        the event holds it now (it was free or expired, or it is this event's own claim);
        otherwise the other event holding it."""
        if not answered:
            seconds = min(seconds, DECIDING_LEASE)
        values = (*scope, key, event_id, int(answered), now + seconds, now)
        with self._lock:
            conn = self._open()
            won = self._run(conn, _CLAIM, values)
            if won:
                return None
            found = self._run(conn, _HOLDER, values[:4])
        if not found:  # expired and swept in between: free after all
            return self.claim(scope, key, event_id, now, seconds, answered)
        holder, was_answered = found[0]
        return None if holder == event_id else Holder(holder, bool(was_answered))

    def sweep(self, now: float) -> int:
        """Forget expired claims, a chunk at a time (claims wait while one is deleted); returns how
        many."""
        done = 0
        while True:
            with self._lock:
                if self._conn is None:
                    return done
                cursor = self._execute(self._open(), _SWEEP, (now, SWEEP_CHUNK))
            done += max(cursor.rowcount, 0)
            if cursor.rowcount < SWEEP_CHUNK:
                return done

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _open(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        create_private(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Waiting for another process's claim (microseconds) is polled below: SQLite's own busy
            # handler would sleep a millisecond or more at a time.
            conn.execute("PRAGMA busy_timeout = 0")
            for statement in ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = OFF", _SCHEMA, _INDEX):
                self._execute(conn, statement, ())
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _run(self, conn: sqlite3.Connection, sql: str, values: tuple) -> list:
        return self._execute(conn, sql, values).fetchall()

    @staticmethod
    def _execute(conn: sqlite3.Connection, sql: str, values: tuple) -> sqlite3.Cursor:
        """One statement (in autocommit); while another process holds the file's write lock, again
        in short steps."""
        return when_not_busy(conn.execute, sql, values)

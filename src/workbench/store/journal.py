"""Append-only journal files: where a receiver process keeps each request it accepts before the
event log holds it.

Each process writes its own files, `<pid>-<random>.log`, in a folder next to the SQLite database,
and holds an exclusive `flock` on each while it lives: a file nobody holds belongs to a process
that died, and whoever takes the lock recovers it. An entry is one `os.write` of a length, a
CRC-32 and the request (msgpack); an incomplete last entry (the process died writing it, so it
was never answered) ends a file, a damaged one is skipped.

Beside it, `<name>.mark` holds (generation, offset): how far the owner has applied the file to the
event log, and how many times it emptied it. Another process waits on the mark to read its
writes (`wait_for_others`).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import msgspec

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<II")  # length of the entry, CRC-32 of the entry
_MARK = struct.Struct("<QQ")  # generation, applied offset
_ENCODER = msgspec.msgpack.Encoder()
SEGMENT_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class Entry:
    """One accepted request as the journal keeps it (headers without `Authorization`)."""

    event_id: str
    received_at: datetime
    source: str
    environment: str
    headers: dict[str, str]
    body: bytes

    def encode(self) -> bytes:
        data = _ENCODER.encode(
            [self.event_id, self.received_at, self.source, self.environment, self.headers, self.body]
        )
        return _HEAD.pack(len(data), zlib.crc32(data)) + data


def journal_dir(database: str | os.PathLike) -> Path:
    """The journal folder of a SQLite database file."""
    return Path(f"{os.fspath(database)}.receiver-journal")


def read_entries(path: Path) -> Iterator[Entry]:
    """The entries of a journal file: damaged ones are skipped, an incomplete last one ends it."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, offset)
        start, end = offset + _HEAD.size, offset + _HEAD.size + length
        chunk = data[start:end]
        if end > len(data):  # cut short: the process died writing it, before it was answered
            log.warning("%s: the last entry, at byte %d, is incomplete and was skipped", path, offset)
            return
        if zlib.crc32(chunk) != crc:
            log.warning("%s: the entry at byte %d is damaged and was skipped", path, offset)
            offset = end
            continue
        try:
            event_id, received_at, source, environment, headers, body = msgspec.msgpack.decode(chunk)
        except (msgspec.DecodeError, TypeError, ValueError):
            log.warning("%s: the entry at byte %d cannot be read and was skipped", path, offset)
        else:
            yield Entry(event_id, received_at, source, environment, headers, body)
        offset = end


class Segment:
    """One journal file of this process, locked while it is open."""

    def __init__(self, folder: Path):
        self.path = folder / f"{os.getpid()}-{secrets.token_hex(4)}.log"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # alive; released by the kernel when we die
        self.mark_fd = os.open(mark_path(self.path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.size = 0
        self.generation = 0
        self.mark(0)

    def append(self, data: bytes) -> int:
        written = os.write(self.fd, data)
        if written != len(data):  # a full disk part-way: the entry is cut; refuse the request
            os.ftruncate(self.fd, self.size)
            raise OSError(errno.ENOSPC, f"journal {self.path}: wrote {written} of {len(data)} bytes")
        self.size += written
        return self.size

    def mark(self, offset: int) -> None:
        os.pwrite(self.mark_fd, _MARK.pack(self.generation, offset), 0)

    def empty(self) -> None:
        os.ftruncate(self.fd, 0)
        self.size = 0
        self.generation += 1
        self.mark(0)

    def close(self, remove: bool) -> None:
        if remove:
            remove_journal(self.path)
        os.close(self.mark_fd)
        os.close(self.fd)  # releases the lock


class Journal:
    """This process's journal: appends, the applied mark, and emptying what is all applied.

    Appends go to the current segment; past `segment_bytes` a new one starts, and an older one is
    removed once all of it is applied, so the files stay small under a load that never pauses.
    Not thread-safe by itself: the caller serialises `append` and `applied`.
    """

    def __init__(self, folder: Path, segment_bytes: int = SEGMENT_BYTES):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.pid = os.getpid()
        self.segment_bytes = segment_bytes
        self.current = Segment(folder)
        self.older: list[Segment] = []

    @property
    def paths(self) -> set[Path]:
        return {self.current.path, *(s.path for s in self.older)}

    def append(self, entry: Entry) -> tuple[Segment, int]:
        """Write one entry; returns its segment and the offset where it ends there."""
        if self.current.size >= self.segment_bytes:
            self.older.append(self.current)
            self.current = Segment(self.folder)
        segment = self.current
        return segment, segment.append(entry.encode())

    def applied(self, segment: Segment, offset: int) -> None:
        """Everything of `segment` up to `offset` is in the event log (call in append order)."""
        if offset < segment.size:
            segment.mark(offset)
        elif segment is self.current:
            segment.empty()
        else:
            segment.close(remove=True)
            self.older.remove(segment)

    def close(self, remove: bool) -> None:
        """Close; `remove` when everything was applied, else the files stay for recovery."""
        for segment in [*self.older, self.current]:
            segment.close(remove)
        self.older = []


def mark_path(path: Path) -> Path:
    return path.with_suffix(".mark")


def read_mark(path: Path) -> tuple[int, int] | None:
    try:
        fd = os.open(mark_path(path), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        data = os.pread(fd, _MARK.size, 0)
    finally:
        os.close(fd)
    return _MARK.unpack(data) if len(data) == _MARK.size else None


def try_lock(path: Path) -> int | None:
    """An fd holding the file's lock when its owner is gone, else None (alive, or already gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    if not path.exists():  # emptied and removed by its owner between our open and our lock
        os.close(fd)
        return None
    return fd


def journal_files(folder: Path, exclude: set[Path] = frozenset()) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.log") if p not in exclude)


def wait_for_others(folder: Path, exclude: set[Path], timeout: float, on_orphan=None) -> bool:
    """Wait until other processes have applied what their journals held when this was called.

    A journal whose owner died is handed to `on_orphan(path, fd)` (which recovers it). Returns
    False when `timeout` ran out first.
    """
    pending = []
    for path in journal_files(folder, exclude):
        mark = read_mark(path)  # before the size: an emptying after this shows as a new generation
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if mark is None or mark[1] < size:
            pending.append((path, mark[0] if mark else None, size))
    deadline = time.monotonic() + timeout
    delay = 0.002
    while pending:
        still = []
        for path, generation, size in pending:
            mark = read_mark(path)
            if not path.exists() or (mark is not None and (mark[0] != generation or mark[1] >= size)):
                continue
            fd = try_lock(path)
            if fd is not None:  # its owner died: recover it here
                if on_orphan is not None:
                    on_orphan(path, fd)
                else:
                    os.close(fd)
                continue
            still.append((path, generation, size))
        pending = still
        if not pending:
            break
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def remove_journal(path: Path) -> None:
    for p in (path, mark_path(path)):
        p.unlink(missing_ok=True)

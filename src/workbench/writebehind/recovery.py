"""The write-behind's recovery: what a dead process's journal holds and the log does not, logged
once, by event id (see the package)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..engine import SourceEvent
from ..errors import NotFound
from ..store import journal
from ..store.journal import Entry
from .writer import MAX_BATCH

log = logging.getLogger("workbench.writebehind")


class Recovery:
    """`WriteBehind`'s recovery of dead processes' journals, through its `_prepare` and `_write`."""

    def recover_orphans(self) -> int:
        """Log what the journals of dead processes hold; returns how many events were logged."""
        done = 0
        for path in journal.journal_files(self.folder, self._own()):
            fd = journal.try_lock(path)
            if fd is not None:
                done += self._recover(path, fd)
        return done

    def _recover(self, path: Path, fd: int) -> int:
        """Log a dead process's journal (whose lock `fd` holds), then remove it."""
        try:
            entries = list(journal.read_entries(path))
            done = 0
            for start in range(0, len(entries), MAX_BATCH):
                done += self._recover_batch(entries[start : start + MAX_BATCH])
            journal.remove_journal(path)
            if done:
                log.warning("logged %d answered events from %s, left by a process that stopped", done, path)
            return done
        finally:
            os.close(fd)

    def _recover_batch(self, entries: list[Entry]) -> int:
        """Log the entries the log does not hold (its process may have died after a commit);
        an error leaves the whole file for the next try."""
        with self.store.engine.connect() as conn:
            present = self.store.logged_ids(conn, [e.event_id for e in entries])
            conn.rollback()
        batch, alone = [], []
        for entry in entries:
            if entry.event_id in present:
                continue
            event = SourceEvent(
                entry.body, entry.headers, origin="live", id=entry.event_id, received_at=entry.received_at
            )
            try:
                config, env = self.service.configs.environment(entry.source, entry.environment)
            except NotFound as exc:
                self._log_failed(event, entry.source, entry.environment, f"{exc}; the row is kept")
                continue
            item = self._prepare(config, env, entry.source, entry.environment, event)
            if item is None:
                alone.append((config, env, entry, event))
            else:
                batch.append(item)
        if batch:
            self._write(batch)
        for config, env, entry, event in alone:  # the config changed since: the ordinary path
            self.service.log_and_process(config, env, entry.source, entry.environment, event)
        return len(batch) + len(alone)

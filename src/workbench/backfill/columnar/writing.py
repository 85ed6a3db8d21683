"""A batch of ordinary rows applied and written: users, memory, one log entry (see the package)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from ...engine import BATCH_BODY, ActionResult, Outcome, SourceEvent, new_event_ids
from ...jsontext import json_text
from ...store import local_users
from ...store.applied import mark_rows, remember, remember_rows, remembered
from .plan import ColumnarPlan
from .reading import ColumnarRows, DuckSource, FailedRow, OrdinaryRow, OtherRow

_decode = msgspec.json.Decoder().decode  # a failed row's payload, to be logged as the engine's


def _ranges(numbers: list[int]) -> list[list[int]]:
    """Row numbers as [first, last] runs."""
    out: list[list[int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def _held(row: OrdinaryRow, claims: dict[str, str], digest: str) -> str | None:
    """The config digest `row` is remembered under on its target, if it is the row that claims it."""
    return digest if claims[row.memory_key] == row.fingerprint else None


class OrdinaryBatches:
    """A run's ordinary rows (`ColumnarRows`), written a batch at a time in the run's transaction:
    the users merged, what each row applied remembered, one log entry for the batch."""

    def __init__(self, backfill: Any, plan: ColumnarPlan, source: DuckSource, every_cell: bool = True):
        self.backfill, self.plan, self.source = backfill, plan, source
        self.every_cell = every_cell  # a failures file writes every cell of the rows that fail

    def rows(
        self, fallback: Callable[[], Iterator] | None = None
    ) -> Iterator[OrdinaryRow | FailedRow | OtherRow]:
        return iter(ColumnarRows(self.plan, self.source, fallback, self.every_cell))

    def write(self, conn, batch: list[OrdinaryRow | FailedRow], now) -> dict[str, int]:
        """Apply and remember one batch of ordinary rows, in export order, as `rules.RowRules._compare`,
        `_apply` and `_write` would, and log its failed rows; returns the rows per category."""
        backfill = self.backfill
        scope, store, sent, valid = backfill.scope, backfill.store, backfill.sent, backfill.valid
        rows = [r for r in batch if type(r) is OrdinaryRow]
        counts, failed, logged = self._failed([r for r in batch if type(r) is FailedRow], now)
        # Read even with --full: the targets found are upserted, the others inserted (`remember`).
        memory = remembered(conn, scope, [r.memory_key for r in rows])
        known = set(memory)
        if backfill.full:
            memory = {}
        todo, same, quiet = [], [], 0
        # Memory key: the fingerprint of the batch's last row that applied it or found it unchanged.
        claims: dict[str, str] = {}
        for row in rows:
            earlier = sent.get(row.target)
            # Once this run sent something else to a target, later rows send to it again.
            if backfill.full or (earlier is not None and earlier != row.sent):
                pass
            elif row.fingerprint in valid:
                quiet += 1  # remembered: its target holds its payload, nothing is written
                continue
            elif memory.get(row.memory_key) == row.payload_hash:
                same.append(row)
                claims[row.memory_key] = row.fingerprint
                continue
            todo.append(row)
            sent[row.target] = row.sent
            memory[row.memory_key] = row.payload_hash  # a row repeated is unchanged the second time
            claims[row.memory_key] = row.fingerprint
        # Each row has one target: the row that claims it is remembered on it (`valid_rows`).
        digest = backfill.digest
        entries = logged
        if todo:
            event_id = new_event_ids(1, now)[0]
            store.patch_records(conn, local_users, [(r.user_id, r.record) for r in todo], now)
            remember(
                conn,
                scope,
                [
                    (r.memory_key, r.payload_hash, event_id, r.fingerprint, _held(r, claims, digest))
                    for r in todo
                ],
                now,
                known,
            )
            entries = [self._entry(event_id, todo, now), *logged]
        store.record_processed(conn, entries, now, remember_applied=False)
        backfill.forget_other_configs(conn)
        mark_rows(
            conn,
            scope,
            [(r.memory_key, r.fingerprint, digest) for r in same if claims[r.memory_key] == r.fingerprint],
        )
        # Failed before anything was sent: remembered by fingerprint, as `rules.RowRules._ended` says.
        remember_rows(conn, scope, digest, [(r.fingerprint, "failed") for r in failed])
        counts["applied"] += len(todo)
        counts["unchanged"] += len(same) + quiet
        return dict(counts)

    def _failed(self, rows: list[FailedRow], now) -> tuple[Counter, list[FailedRow], list[tuple]]:
        """A batch's failed rows: their counts, those not remembered, and their log entries (each
        with its whole body, as `rules.RowRules._write` logs a failed row)."""
        backfill, mapping = self.backfill, self.plan.mapping
        counts: Counter = Counter()
        todo = []
        for row in rows:
            # A row remembered under this config ends as it did, writing nothing (`RowRules._apply`).
            how = backfill.valid.get(row.fingerprint)  # (none with --full)
            if how is None:
                todo.append(row)
            else:
                counts["unchanged" if how == "done" else how] += 1
        counts["failed"] += len(todo)
        source, environment = backfill.scope
        params = mapping.raw.get("params")
        entries = []
        for row, event_id in zip(todo, new_event_ids(len(todo), now), strict=True):
            result = ActionResult(
                mapping.action,
                "failed",
                mapping.key,
                params=params,
                payload=_decode(row.payload),
                error=self.plan.failure,
            )
            outcome = Outcome("failed", self.plan.event, actions=[result], idempotency_key=row.key)
            event = SourceEvent(row.body, backfill.headers, origin="backfill", id=event_id, received_at=now)
            entries.append((event, source, environment, outcome))
        return counts, todo, entries

    def _entry(self, event_id: str, rows: list[OrdinaryRow], now) -> tuple:
        """The event-log entry standing for a batch: a pointer to the rows in the export."""
        backfill, mapping = self.backfill, self.plan.mapping
        ranges = _ranges([r.number for r in rows])
        pointer = {
            BATCH_BODY: {
                **self.source.pointer(),
                "rows": ranges,
                "applied": len(rows),
                "note": "rows applied in bulk; the export holds their bodies, the log keeps failed rows whole",
            }
        }
        result = ActionResult(
            mapping.action,
            "success",
            mapping.key,
            params=mapping.raw.get("params"),
            result={"applied": len(rows), "rows": ranges},
        )
        outcome = Outcome("processed", self.plan.event, actions=[result], body=pointer)
        event = SourceEvent(
            json_text(pointer), backfill.headers, origin="backfill", id=event_id, received_at=now
        )
        return event, *backfill.scope, outcome

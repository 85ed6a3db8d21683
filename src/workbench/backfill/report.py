"""What a backfill reports: counts of rows by what happened to them, a plan, and the failures file."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError

# What happened to a row: `applied` (something was sent), `unchanged` (what it would send is what
# its targets hold already), `skipped` (its conditions left nothing to send), `no_mapping`,
# `invalid`, `failed` (an action failed), `queued` (an action waits for a retry).
STATUSES = ("applied", "unchanged", "skipped", "no_mapping", "invalid", "failed", "queued")
# Statuses whose rows go to the failures file: nothing was (or could be) applied for them.
FAILURE_STATUSES = ("invalid", "failed", "no_mapping")


@dataclass
class BackfillSummary:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def all_failed(self) -> bool:
        """Rows were read and not one of them could be applied or was already."""
        return self.rows > 0 and self.counts["failed"] + self.counts["invalid"] == self.rows

    def postfix(self) -> dict[str, int]:
        """The counts so far that are not zero, for the progress bar."""
        return {k: v for k, v in self.counts.items() if v}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        out["seconds"] = round(self.seconds, 3)
        if self.interrupted:
            out["interrupted"] = True
        return out


@dataclass
class SyncPlan:
    """What a backfill would do: rows by status, actions by type and status, first rows of each."""

    examples: int = 3
    summary: BackfillSummary = field(default_factory=BackfillSummary)
    actions: dict[str, dict[str, int]] = field(default_factory=dict)
    first: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, row) -> None:
        self.summary.counts[row.status] += 1
        kept = self.first.setdefault(row.status, [])
        if len(kept) < self.examples:
            kept.append({"row": row.number, "event": _event(row), "reason": row.reason})
        planned = row.plan.outcome.actions if row.plan is not None and not row.plan.final else ()
        for result in planned:
            status = _action_status(result)
            per = self.actions.setdefault(result.action, {})
            per[status] = per.get(status, 0) + 1

    def text(self) -> str:
        """The plan for people: rows by status, actions by type, then the first rows of each."""
        counts = self.summary.counts
        lines = [
            "Plan (nothing applied): "
            + ", ".join(f"{counts[s]} {s.replace('applied', 'to apply')}" for s in STATUSES if counts[s])
        ]
        for action, per in self.actions.items():
            lines.append(f"  {action}: " + ", ".join(f"{n} {s}" for s, n in per.items()))
        for status, first in self.first.items():
            label = "to apply" if status == "applied" else status
            for example in first:
                reason = f": {example['reason']}" if example["reason"] else ""
                lines.append(f"  {label} row {example['row']} ({example['event']}){reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.summary.to_dict(),
            "actions": self.actions,
            "first_rows": {k: v for k, v in self.first.items() if v},
        }


def _event(row) -> str | None:
    return row.plan.outcome.event if row.plan is not None else None


def _action_status(result) -> str:
    """How the plan counts an action: `to apply` (it would be sent), `unchanged`, `skipped`, `failed`."""
    if result.status == "pending":
        return "to apply"
    if result.status == "skipped" and (result.result or {}).get("reason", "").startswith("unchanged"):
        return "unchanged"
    return result.status


class FailureWriter:
    """The failures file: each row as exported, plus `_row_number`, `_status` and `_reason`."""

    def __init__(self, path: str | os.PathLike, header: list[str]):
        # Opened before the first row runs: a path that cannot be written stops nothing half-way.
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed by close())
        except FileExistsError as exc:  # a file stands where a folder of the path should be
            raise self._cannot(path, f"{exc.filename} is not a folder") from None
        except OSError as exc:
            raise self._cannot(path, exc.strerror or str(exc)) from None
        self.writer = csv.writer(self.file, quoting=csv.QUOTE_ALL)
        self.writer.writerow([*header, "_row_number", "_status", "_reason"])

    @staticmethod
    def _cannot(path, reason: str) -> WorkbenchError:
        return WorkbenchError(
            f"cannot write the failures file {os.fspath(path)} ({reason}); "
            "give --failures a path in a folder you can write to"
        )

    def write(self, row) -> None:
        cells = ["" if c is None else c for c in row.cells]
        self.writer.writerow([*cells, row.number, row.status, row.reason or ""])

    def close(self) -> None:
        self.file.close()

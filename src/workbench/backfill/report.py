"""What a backfill reports: counts by status, and the failures file."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError

STATUSES = ("processed", "idempotent", "no_mapping", "invalid", "failed", "queued")
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

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        out["seconds"] = round(self.seconds, 3)
        if self.interrupted:
            out["interrupted"] = True
        return out


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

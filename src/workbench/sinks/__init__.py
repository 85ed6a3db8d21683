"""Where actions go. `dry-run` lives here; `local` and `knock` have modules of their own."""

from __future__ import annotations

from typing import Any

from ..engine import ActionRequest


class DryRunSink:
    """Resolves and validates only: an action that validates reports success, nothing is sent."""

    name = "dry-run"

    def apply(self, request: ActionRequest) -> Any:
        return {"dry_run": True}

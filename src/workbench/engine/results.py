"""Results: what became of each action (`ActionResult`) and of the event (`Outcome`), and the
one roll-up of an event's status from its actions'."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# An answer (which Clay shows in a cell) cuts an event name after this many characters; the log
# keeps it whole.
EVENT_NAME_SHOWN = 200


@dataclass(slots=True)
class ActionResult:
    action: str
    status: str  # success, skipped, failed, queued
    mapping: str
    params: Any = None
    payload: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None
    retry_after: float | None = None
    # A trigger's Idempotency-Key while Knock may have run it under that key (see `Engine.apply`).
    request_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "status": self.status, "payload": self.payload}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["result"] = self.result
        return out


def rolled_up_status(actions) -> str:
    """An applied event's status from its actions': failed if one failed, else queued if one
    waits for a retry, else processed."""
    statuses = {a.status for a in actions}
    return "failed" if "failed" in statuses else "queued" if "queued" in statuses else "processed"


@dataclass(slots=True)
class Outcome:
    status: str  # processed, idempotent, no_mapping, queued, invalid, failed
    event: str | None
    actions: list[ActionResult] = field(default_factory=list)
    error: str | None = None
    idempotency_key: str | None = None
    idempotency_note: str | None = None
    body: Any = None

    def to_dict(self, event_id: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if event_id is not None:
            out["id"] = event_id
        out["status"] = self.status
        out["event"] = shortened(self.event)
        if self.error is not None:
            out["error"] = self.error
        if self.idempotency_note is not None:
            out["idempotency"] = self.idempotency_note
        out["actions"] = [a.to_dict() for a in self.actions]
        return out


def shortened(name: str | None, limit: int = EVENT_NAME_SHOWN) -> str | None:
    """An event name as an answer shows it: cut after `limit` characters, saying so."""
    if name is None or len(name) <= limit:
        return name
    return f"{name[:limit]}… ({len(name)} characters)"

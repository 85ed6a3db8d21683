"""Ports: what the engine hands a sink (`ActionRequest`), and the two interfaces through which
it reaches sinks and storage (`Sink`, `IdempotencyPort`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .ids import content_hash
from .results import ActionResult


@dataclass(slots=True)
class ActionRequest:
    """What a sink receives: the action type and its validated payload."""

    action: str
    payload: dict[str, Any]
    event_id: str | None
    mapping_key: str
    # A backfilled row's own identity (see `row_identity`): what its keys derive from instead of
    # the event id, which a re-run of the row does not keep.
    row: str | None = None
    key: str | None = None  # set by `Engine.apply` when earlier attempts decide it

    @property
    def idempotency_key(self) -> str | None:
        """Stable per event and mapping (a backfilled row: per row, mapping and payload), so a
        retried or re-sent trigger never runs twice in Knock; a changed payload of a backfilled row
        gets its own key, as Knock refuses a key reused with other parameters."""
        if self.key is not None:
            return self.key
        if self.row is not None:
            text = f"{self.row}\n{self.mapping_key}\n{content_hash(self.payload)}"
            return f"row_{hashlib.sha256(text.encode()).hexdigest()}"
        return f"{self.event_id}:{self.mapping_key}" if self.event_id else None


class Sink(Protocol):
    """Where actions go. Besides `apply`, a sink declares what else it can do; callers ask it
    for these capabilities, never for its name or class."""

    name: str
    # Writes into the event-log store: `bind(conn)` gives the same sink on that connection, so
    # that what it writes commits (or not) with the outcome the service records there.
    transactional: bool
    # Has bulk calls for a batch of actions (a backfill wraps it to gather a batch and flush it).
    bulk: bool

    def apply(self, request: ActionRequest) -> Any:
        """Apply one action; return its result or raise Transient/TerminalSinkError."""


class IdempotencyPort(Protocol):
    def reserve(self, scope: tuple[str, str, str], key: str, now: datetime, window_seconds: float) -> bool:
        """Reserve `key`; False when a live reservation or a remembered success exists."""

    def complete(self, scope: tuple[str, str, str], key: str, now: datetime) -> None:
        """Remember a successful execution."""

    def release(self, scope: tuple[str, str, str], key: str) -> None:
        """Forget a reservation whose execution did not succeed."""

    def earlier(
        self, scope: tuple[str, str, str], key: str, now: datetime, window_seconds: float
    ) -> dict[str, ActionResult]:
        """Per mapping, the action results of the latest attempt with `key` within the window
        that failed (its key was released); empty when there is none."""

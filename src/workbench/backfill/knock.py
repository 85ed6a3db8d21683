"""The knock sink for one backfill batch: users identified with Knock's bulk endpoint.

`users_identify` actions are collected and sent with `users.bulk.identify`, up to 1,000 users a
call. A 429 is waited out (its Retry-After, within `max_wait` seconds in all) and the call tried
again; what still cannot be sent is settled per action, as the single-user path would: queued
(retried later by the receiver's retry worker, one user at a time) or failed. Every other
action goes to the `KnockSink` as it is, after the pending users are sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import knockapi

from ..engine import ActionRequest
from ..errors import TerminalSinkError
from ..sinks.knock import (
    TRANSIENT_STATUSES,
    USER_FIELDS,
    KnockSink,
    _custom,
    _knock_message,
    _named,
    retry_after,
)

BULK_LIMIT = 1000  # users per bulk identify call, Knock's limit


@dataclass(slots=True)
class Settled:
    """What became of one identify sent in bulk, when it did not succeed."""

    status: str  # queued or failed
    error: str
    retry_after: float | None = None


class BulkKnockUsers:
    """A sink over a `KnockSink`; call `flush()` after the batch, then settle what it returns."""

    def __init__(
        self,
        sink: KnockSink,
        max_wait: float = 60.0,
        chunk: int = BULK_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.sink = sink
        self.max_wait = max_wait
        self.chunk = chunk
        self.sleep = sleep
        self.pending: list[tuple[ActionRequest, dict[str, Any]]] = []
        self.settled: dict[tuple[str | None, str], Settled] = {}
        self.calls = 0

    def apply(self, request: ActionRequest) -> Any:
        if request.action != "users_identify" or self.sink.client is None:
            self.flush()
            return self.sink.apply(request)
        result: dict[str, Any] = {"id": request.payload["id"]}
        self.pending.append((request, result))
        if len(self.pending) >= self.chunk:
            self.flush()
        return result

    def flush(self) -> dict[tuple[str | None, str], Settled]:
        """Send the pending users; returns {(event id, mapping key): Settled} for those not sent."""
        while self.pending:
            chunk, self.pending = self.pending[: self.chunk], self.pending[self.chunk :]
            self._send(chunk)
        return self.settled

    def _send(self, chunk: list[tuple[ActionRequest, dict[str, Any]]]) -> None:
        users = [
            {"id": r.payload["id"], **_named(r.payload, USER_FIELDS), **_custom(r.payload, USER_FIELDS)}
            for r, _ in chunk
        ]
        waited = 0.0
        while True:
            self.calls += 1
            if self.sink._rate is not None:
                self.sink._rate.wait()
            try:
                operation = self.sink.client.users.bulk.identify(users=users)
            except knockapi.APIStatusError as exc:
                status, wait = exc.status_code, retry_after(exc.response.headers)
                if status == 429 and waited + (wait or 1.0) <= self.max_wait:
                    self.sleep(wait or 1.0)
                    waited += wait or 1.0
                    continue
                message = f"Knock answered {status} to a bulk identify: {_knock_message(exc)}"
                if status in TRANSIENT_STATUSES or status >= 500:
                    self._settle(chunk, Settled("queued", message + "; it will be retried", wait))
                else:
                    self._settle(chunk, Settled("failed", message))
                return
            except (knockapi.APITimeoutError, knockapi.APIConnectionError) as exc:
                self._settle(
                    chunk,
                    Settled("queued", f"cannot reach Knock for a bulk identify ({exc}); it will be retried"),
                )
                return
            except knockapi.KnockError as exc:
                self._settle(
                    chunk, Settled("failed", str(TerminalSinkError(f"Knock bulk identify failed: {exc}")))
                )
                return
            for _, result in chunk:
                result["bulk_operation_id"] = operation.id
            return

    def _settle(self, chunk, settled: Settled) -> None:
        for request, _ in chunk:
            self.settled[(request.event_id, request.mapping_key)] = settled

"""The knock sink for one backfill batch: users and objects sent with Knock's bulk endpoints.

`users_identify` actions are collected and sent with `users.bulk.identify`, and `objects_set`
actions with `objects.bulk.set` (one call per collection), up to 1,000 a call. A 429 is waited
out (its Retry-After, within `max_wait` seconds in all) and the call tried again; what still
cannot be sent is settled per action, as the one-at-a-time path would: queued (retried later by
the receiver's retry worker, one at a time) or failed. Every other action goes to the `KnockSink`
as it is, after the pending users and objects are sent (users first: Knock's execution order).
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
    OBJECT_FIELDS,
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


class BulkKnock:
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
        self.pending_users: list[tuple[ActionRequest, dict[str, Any]]] = []
        self.pending_objects: dict[str, list[tuple[ActionRequest, dict[str, Any]]]] = {}
        self.settled: dict[tuple[str | None, str], Settled] = {}
        self.calls = 0

    def apply(self, request: ActionRequest) -> Any:
        p = request.payload
        if self.sink.client is not None and request.action == "users_identify":
            pending, result = self.pending_users, {"id": p["id"]}
        elif self.sink.client is not None and request.action == "objects_set":
            pending = self.pending_objects.setdefault(p["collection"], [])
            result = {"collection": p["collection"], "id": p["id"]}
        else:
            self.flush()
            return self.sink.apply(request)
        pending.append((request, result))
        if len(pending) >= self.chunk:
            self.flush()
        return result

    def flush(self) -> dict[tuple[str | None, str], Settled]:
        """Send the pending users, then objects; returns {(event id, mapping key): Settled} for
        those not sent."""
        client = self.sink.client
        pending = [
            (
                "a bulk identify",
                USER_FIELDS,
                lambda e: client.users.bulk.identify(users=e),
                self.pending_users,
            )
        ]
        pending += [
            (
                f"a bulk set of `{c}` objects",
                OBJECT_FIELDS,
                lambda e, c=c: client.objects.bulk.set(c, objects=e),
                p,
            )
            for c, p in self.pending_objects.items()
        ]
        self.pending_users, self.pending_objects = [], {}
        for what, fields, call, requests in pending:
            for start in range(0, len(requests), self.chunk):
                chunk = requests[start : start + self.chunk]
                entries = [
                    {"id": r.payload["id"], **_named(r.payload, fields), **_custom(r.payload, fields)}
                    for r, _ in chunk
                ]
                self._send(chunk, what, call, entries)
        return self.settled

    def _send(self, chunk: list[tuple[ActionRequest, dict[str, Any]]], what: str, call, entries) -> None:
        waited = 0.0
        while True:
            self.calls += 1
            if self.sink._rate is not None:
                self.sink._rate.wait()
            try:
                operation = call(entries)
            except knockapi.APIStatusError as exc:
                status, wait = exc.status_code, retry_after(exc.response.headers)
                if status == 429 and waited + (wait or 1.0) <= self.max_wait:
                    self.sleep(wait or 1.0)
                    waited += wait or 1.0
                    continue
                message = f"Knock answered {status} to {what}: {_knock_message(exc)}"
                if status in TRANSIENT_STATUSES or status >= 500:
                    self._settle(chunk, Settled("queued", message + "; it will be retried", wait))
                else:
                    self._settle(chunk, Settled("failed", message))
                return
            except (knockapi.APITimeoutError, knockapi.APIConnectionError) as exc:
                self._settle(
                    chunk, Settled("queued", f"cannot reach Knock for {what} ({exc}); it will be retried")
                )
                return
            except knockapi.KnockError as exc:
                self._settle(chunk, Settled("failed", str(TerminalSinkError(f"Knock: {what} failed: {exc}"))))
                return
            for _, result in chunk:
                result["bulk_operation_id"] = operation.id
            return

    def _settle(self, chunk, settled: Settled) -> None:
        for request, _ in chunk:
            self.settled[(request.event_id, request.mapping_key)] = settled

"""The knock sink for one backfill batch: what Knock's bulk endpoints take, sent in bulk.

Users, objects and tenants are collected and sent with Knock's bulk endpoints, up to 1,000 a
call: `users_identify` and `users_delete` with `users.bulk.identify` / `.delete`, `objects_set`
and `objects_delete` with `objects.bulk.set` / `.delete` (one call per collection), `tenants_set`
and `tenants_delete` with `tenants.bulk.set` / `.delete`. A flush sends them in Knock's execution
order (users identified, users deleted, objects set, objects deleted, tenants set, tenants
deleted). A row that sets what an earlier row of the batch deletes (or the reverse) first
flushes what is pending, so the two calls are made in the export's order. (Knock answers a bulk
call with a bulk operation it runs in the background: the calls' order is ours, their completion
Knock's, as for any call made after a bulk one.)

A 429 is waited out (its Retry-After, within `max_wait` seconds in all) and the call tried again;
what still cannot be sent is settled per action, as the one-at-a-time path would: queued
(retried later by the receiver's retry worker, one at a time) or failed. Every other action goes
to the `KnockSink` as it is, after what is pending is sent.
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

BULK_LIMIT = 1000  # entries per bulk call, Knock's limit
# Tenant ids of a bulk delete travel in the query string: fewer a call keep the URL short.
QUERY_LIMIT = 100


@dataclass(slots=True)
class Settled:
    """What became of one action sent in bulk, when it did not succeed."""

    status: str  # queued or failed
    error: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class _Bulk:
    """How one action type goes to Knock in bulk. `kind` names what it changes (actions of one
    kind and collection on the same id are sent in the export's order)."""

    kind: str
    what: str  # for messages; {collection} is filled in
    entry: Callable[[dict[str, Any]], Any]
    call: Callable[[Any, str | None, list[Any]], Any]  # (client, collection, entries) → operation
    done: Callable[[dict[str, Any]], dict[str, Any]]
    limit: int = BULK_LIMIT


def _entity(p: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {"id": p["id"], **_named(p, fields), **_custom(p, fields)}


def _deleted(p: dict[str, Any]) -> dict[str, Any]:
    return {**({"collection": p["collection"]} if "collection" in p else {}), "id": p["id"], "deleted": True}


# In Knock's execution order: a flush sends them in this order.
BULK: dict[str, _Bulk] = {
    "users_identify": _Bulk(
        "users",
        "a bulk identify",
        lambda p: _entity(p, USER_FIELDS),
        lambda client, _, entries: client.users.bulk.identify(users=entries),
        lambda p: {"id": p["id"]},
    ),
    "users_delete": _Bulk(
        "users",
        "a bulk delete of users",
        lambda p: p["id"],
        lambda client, _, ids: client.users.bulk.delete(user_ids=ids),
        _deleted,
    ),
    "objects_set": _Bulk(
        "objects",
        "a bulk set of `{collection}` objects",
        lambda p: _entity(p, OBJECT_FIELDS),
        lambda client, collection, entries: client.objects.bulk.set(collection, objects=entries),
        lambda p: {"collection": p["collection"], "id": p["id"]},
    ),
    "objects_delete": _Bulk(
        "objects",
        "a bulk delete of `{collection}` objects",
        lambda p: p["id"],
        lambda client, collection, ids: client.objects.bulk.delete(collection, object_ids=ids),
        _deleted,
    ),
    "tenants_set": _Bulk(
        "tenants",
        "a bulk set of tenants",
        lambda p: _entity(p, ("name",)),
        lambda client, _, entries: client.tenants.bulk.set(tenants=entries),
        lambda p: {"id": p["id"]},
    ),
    "tenants_delete": _Bulk(
        "tenants",
        "a bulk delete of tenants",
        lambda p: p["id"],
        lambda client, _, ids: client.tenants.bulk.delete(tenant_ids=ids),
        _deleted,
        limit=QUERY_LIMIT,
    ),
}
_ORDER = {action: rank for rank, action in enumerate(BULK)}


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
        # (action, collection) → [(request, result)], and which action each pending id awaits.
        self.pending: dict[tuple[str, str | None], list[tuple[ActionRequest, dict[str, Any]]]] = {}
        self.waiting: dict[tuple[str, str | None, str], str] = {}
        self.settled: dict[tuple[str | None, str], Settled] = {}
        self.calls = 0

    def apply(self, request: ActionRequest) -> Any:
        bulk = BULK.get(request.action)
        if self.sink.client is None or bulk is None:
            self.flush()
            return self.sink.apply(request)
        p = request.payload
        collection = p.get("collection") if bulk.kind == "objects" else None
        entity = (bulk.kind, collection, p["id"])
        if self.waiting.get(entity, request.action) != request.action:
            self.flush()  # a set after a delete of the same id (or the reverse) waits its turn
        self.waiting[entity] = request.action
        pending = self.pending.setdefault((request.action, collection), [])
        result = bulk.done(p)
        pending.append((request, result))
        if len(pending) >= min(self.chunk, bulk.limit):
            self.flush()
        return result

    def flush(self) -> dict[tuple[str | None, str], Settled]:
        """Send what is pending, in Knock's execution order; returns {(event id, mapping key):
        Settled} for the actions not sent."""
        client = self.sink.client
        pending = sorted(self.pending.items(), key=lambda item: _ORDER[item[0][0]])
        self.pending, self.waiting = {}, {}
        for (action, collection), requests in pending:
            bulk = BULK[action]
            what = bulk.what.format(collection=collection)
            size = min(self.chunk, bulk.limit)
            for start in range(0, len(requests), size):
                chunk = requests[start : start + size]
                entries = [bulk.entry(r.payload) for r, _ in chunk]
                self._send(chunk, what, lambda e, b=bulk, c=collection: b.call(client, c, e), entries)
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

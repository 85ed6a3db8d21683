"""The knock sink for one backfill batch: what Knock's bulk endpoints take, sent in bulk.

Users, objects, tenants and subscriptions are collected and sent with Knock's bulk endpoints, up
to 1,000 entries a call: `users_identify` / `users_delete` with `users.bulk.identify` /
`.delete`; `objects_set` / `objects_delete` with `objects.bulk.set` / `.delete`, and
`objects_subscribe` / `objects_unsubscribe` with `objects.bulk.add_subscriptions` /
`.delete_subscriptions` (one call per collection; 100 recipients an entry); `tenants_set` /
`tenants_delete` with `tenants.bulk.set` / `.delete` (100 ids a call: they travel in the URL).

A flush sends them in Knock's execution order (`BULK`'s order). That order can differ from the
export's only where it does not matter, or the flush comes first: an action that adds to
something (a user, an object, a tenant, a subscription) and one that removes it do not commute,
so when such an action comes after its opposite on the same thing, yet would be sent before it,
what is pending is sent first. (Knock answers a bulk call with a bulk operation it runs in the
background: the calls' order is ours, their completion Knock's, as for any call made after a
bulk one.)

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
    PAYLOAD_RESULTS,
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
RECIPIENTS_PER_ENTRY = 100  # recipients of one object in a bulk subscription entry, Knock's limit


@dataclass(slots=True)
class Settled:
    """What became of one action sent in bulk, when it did not succeed."""

    status: str  # queued or failed
    error: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class _Bulk:
    """How one action type goes to Knock in bulk."""

    what: str  # for messages; {collection} is filled in
    entries: Callable[[dict[str, Any]], list[Any]]  # an action's entries in the call
    call: Callable[[Any, str | None, list[Any]], Any]  # (client, collection, entries) → operation
    things: Callable[[dict[str, Any]], list[tuple]]  # what it adds to (or removes)
    removes: bool = False
    limit: int = BULK_LIMIT


def _entity(p: dict[str, Any], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"id": p["id"], **_named(p, fields), **_custom(p, fields)}]


def _subscriptions(p: dict[str, Any]) -> list[dict[str, Any]]:
    recipients = p["recipients"]
    return [
        {"id": p["id"], "recipients": recipients[i : i + RECIPIENTS_PER_ENTRY]}
        for i in range(0, len(recipients), RECIPIENTS_PER_ENTRY)
    ]


def _recipient(recipient: Any) -> tuple:
    """A subscriber as a thing: a user id, or an object reference."""
    if isinstance(recipient, dict) and "collection" in recipient:
        return ("objects", recipient.get("collection"), recipient.get("id"))
    return ("users", recipient.get("id") if isinstance(recipient, dict) else recipient)


def _pairs(p: dict[str, Any]) -> list[tuple]:
    """The (object, recipient) subscriptions an action names."""
    return [("subscription", p["collection"], p["id"], _recipient(r)) for r in p["recipients"]]


def _subscribed(p: dict[str, Any]) -> list[tuple]:
    """A subscription adds to its object and its recipients (deleting either undoes it)."""
    return [("objects", p["collection"], p["id"]), *(_recipient(r) for r in p["recipients"]), *_pairs(p)]


# In Knock's execution order: a flush sends them in this order.
BULK: dict[str, _Bulk] = {
    "users_identify": _Bulk(
        "a bulk identify",
        lambda p: _entity(p, USER_FIELDS),
        lambda client, _, entries: client.users.bulk.identify(users=entries),
        lambda p: [("users", p["id"])],
    ),
    "users_delete": _Bulk(
        "a bulk delete of users",
        lambda p: [p["id"]],
        lambda client, _, ids: client.users.bulk.delete(user_ids=ids),
        lambda p: [("users", p["id"])],
        removes=True,
    ),
    "objects_set": _Bulk(
        "a bulk set of `{collection}` objects",
        lambda p: _entity(p, OBJECT_FIELDS),
        lambda client, collection, entries: client.objects.bulk.set(collection, objects=entries),
        lambda p: [("objects", p["collection"], p["id"])],
    ),
    "objects_delete": _Bulk(
        "a bulk delete of `{collection}` objects",
        lambda p: [p["id"]],
        lambda client, collection, ids: client.objects.bulk.delete(collection, object_ids=ids),
        lambda p: [("objects", p["collection"], p["id"])],
        removes=True,
    ),
    "tenants_set": _Bulk(
        "a bulk set of tenants",
        lambda p: _entity(p, ("name",)),
        lambda client, _, entries: client.tenants.bulk.set(tenants=entries),
        lambda p: [("tenants", p["id"])],
    ),
    "tenants_delete": _Bulk(
        "a bulk delete of tenants",
        lambda p: [p["id"]],
        lambda client, _, ids: client.tenants.bulk.delete(tenant_ids=ids),
        lambda p: [("tenants", p["id"])],
        removes=True,
        limit=QUERY_LIMIT,
    ),
    "objects_subscribe": _Bulk(
        "a bulk subscription to `{collection}` objects",
        _subscriptions,
        lambda client, collection, entries: client.objects.bulk.add_subscriptions(
            collection, subscriptions=entries
        ),
        _subscribed,
    ),
    "objects_unsubscribe": _Bulk(
        "a bulk unsubscription from `{collection}` objects",
        _subscriptions,
        lambda client, collection, entries: client.objects.bulk.delete_subscriptions(
            collection, subscriptions=entries
        ),
        _pairs,
        removes=True,
    ),
}
_RANK = {action: rank for rank, action in enumerate(BULK)}


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
        # (action, collection) → [(request, result, its entries)], and the entries' count.
        self.pending: dict[tuple[str, str | None], list[tuple[ActionRequest, dict, list]]] = {}
        self.counts: dict[tuple[str, str | None], int] = {}
        # (thing, removes) → the highest rank of a pending action adding to (removing) it.
        self.waiting: dict[tuple[tuple, bool], int] = {}
        self.settled: dict[tuple[str | None, str], Settled] = {}
        self.calls = 0

    def apply(self, request: ActionRequest) -> Any:
        bulk = BULK.get(request.action)
        if self.sink.client is None or bulk is None:
            self.flush()
            return self.sink.apply(request)
        p = request.payload
        rank, things = _RANK[request.action], bulk.things(p)
        # Sent after its opposite on the same thing only if the opposite ranks lower.
        if any(self.waiting.get((thing, not bulk.removes), -1) > rank for thing in things):
            self.flush()
        for thing in things:
            key = (thing, bulk.removes)
            self.waiting[key] = max(self.waiting.get(key, -1), rank)
        group = (request.action, p.get("collection"))
        pending = self.pending.setdefault(group, [])
        result = PAYLOAD_RESULTS[request.action](p)
        pending.append((request, result, bulk.entries(p)))
        self.counts[group] = self.counts.get(group, 0) + len(pending[-1][2])
        if self.counts[group] >= min(self.chunk, bulk.limit):
            self.flush()
        return result

    def flush(self) -> dict[tuple[str | None, str], Settled]:
        """Send what is pending, in Knock's execution order; returns {(event id, mapping key):
        Settled} for the actions not sent."""
        client = self.sink.client
        pending = sorted(self.pending.items(), key=lambda item: _RANK[item[0][0]])
        self.pending, self.waiting, self.counts = {}, {}, {}
        for (action, collection), actions in pending:
            bulk = BULK[action]
            what = bulk.what.format(collection=collection)
            limit = min(self.chunk, bulk.limit)
            call = lambda e, b=bulk, c=collection: b.call(client, c, e)  # noqa: E731
            chunk: list[tuple[ActionRequest, dict[str, Any]]] = []
            entries: list[Any] = []
            for request, result, own in actions:
                if chunk and len(entries) + len(own) > limit:
                    self._send(chunk, what, call, entries)
                    chunk, entries = [], []
                chunk.append((request, result))
                entries += own
            if chunk:
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

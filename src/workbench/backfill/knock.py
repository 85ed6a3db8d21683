"""The knock sink for one backfill batch: what Knock's bulk endpoints take, sent in bulk, and
followed until Knock has applied it.

Users, objects, tenants and subscriptions are collected and sent with Knock's bulk endpoints, up
to 1,000 entries a call: `users_identify` / `users_delete` with `users.bulk.identify` /
`.delete`; `objects_set` / `objects_delete` with `objects.bulk.set` / `.delete`, and
`objects_subscribe` / `objects_unsubscribe` with `objects.bulk.add_subscriptions` /
`.delete_subscriptions` (one call per collection; 100 recipients an entry); `tenants_set` /
`tenants_delete` with `tenants.bulk.set` / `.delete` (100 ids a call: they travel in the URL).
Entries of one call that set (or delete) the same thing are merged into one, in the export's
order, since Knock updates an entity at most once a second and skips the rest.

Knock answers a bulk call with a bulk operation that it runs later. Each operation is followed
(`GET /v1/bulk_operations/{id}`, with backoff, within `operation_deadline` seconds) until it
completed: an action counts as applied only then, and only if its entry is not among the
operation's error items (those are `failed`, with Knock's reason); an operation that failed, or
did not complete in time, leaves its actions `queued` for the retry worker. Entities Knock
skipped for its batch limit (named in an `x-ratelimited-…` header of a 2xx answer) are sent
again, up to `RESENDS` times, then `queued`.

A flush sends in Knock's execution order (`BULK`'s order). That order can differ from the
export's only where it does not matter, or the flush comes first: an action that adds to
something (a user, an object, a tenant, a subscription) and one that removes it do not commute,
so when such an action comes after its opposite on the same thing, yet would be sent before it,
what is pending is sent first. A call that touches something an operation still running touches
waits for it to complete, so a subscription never reaches Knock before its user or object.
Every other action (triggers, audiences, cancellations) waits, in the export's order, until the
batch's bulk operations completed, so a trigger's recipients and actor exist when it runs.

Calls are paced by each endpoint's rate-limit tier (`sinks.knock_tiers`); a 429 is waited out
(its Retry-After, within `max_wait` seconds in all) and the call tried again; what still cannot be
sent is settled per action, as the one-at-a-time path would: queued (retried later by the
receiver's retry worker, one at a time) or failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import knockapi

from ..engine import ActionRequest
from ..errors import SinkError, TerminalSinkError, TransientSinkError
from ..sinks.knock import (
    OBJECT_FIELDS,
    PAYLOAD_RESULTS,
    SUBSCRIPTION_RECIPIENTS,
    TRANSIENT_STATUSES,
    USER_FIELDS,
    KnockSink,
    _custom,
    _knock_message,
    _named,
    retry_after,
    unusable_path_param,
)

BULK_LIMIT = 1000  # entries per bulk call, Knock's limit
# Tenant ids of a bulk delete travel in the query string: fewer a call keep the URL short.
QUERY_LIMIT = 100
RECIPIENTS_PER_ENTRY = SUBSCRIPTION_RECIPIENTS  # recipients of one object in a bulk subscription entry
OPERATION_DEADLINE = 600.0  # seconds to wait for a bulk operation to complete
# Seconds between two looks at a running operation: a quarter of the time waited so far, within
# these bounds (a look is cheap, 200 a second are allowed; a completion seen late delays the batch).
FIRST_POLL, LAST_POLL = 0.02, 2.0
RESENDS = 3  # times an entity Knock skipped for its batch limit is sent again


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
    call: Callable[[Any, str | None, list[Any]], Any]  # (client, collection, entries) → raw answer
    things: Callable[[dict[str, Any]], list[tuple]]  # what it adds to (or removes)
    removes: bool = False
    limit: int = BULK_LIMIT
    merge: bool = True  # entries naming the same thing become one (False: subscriptions)


def _entry_id(entry: Any) -> str:
    return entry if isinstance(entry, str) else entry["id"]


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
        lambda client, _, entries: client.users.bulk.with_raw_response.identify(users=entries),
        lambda p: [("users", p["id"])],
    ),
    "users_delete": _Bulk(
        "a bulk delete of users",
        lambda p: [p["id"]],
        lambda client, _, ids: client.users.bulk.with_raw_response.delete(user_ids=ids),
        lambda p: [("users", p["id"])],
        removes=True,
    ),
    "objects_set": _Bulk(
        "a bulk set of `{collection}` objects",
        lambda p: _entity(p, OBJECT_FIELDS),
        lambda client, collection, entries: client.objects.bulk.with_raw_response.set(
            collection, objects=entries
        ),
        lambda p: [("objects", p["collection"], p["id"])],
    ),
    "objects_delete": _Bulk(
        "a bulk delete of `{collection}` objects",
        lambda p: [p["id"]],
        lambda client, collection, ids: client.objects.bulk.with_raw_response.delete(
            collection, object_ids=ids
        ),
        lambda p: [("objects", p["collection"], p["id"])],
        removes=True,
    ),
    "tenants_set": _Bulk(
        "a bulk set of tenants",
        lambda p: _entity(p, ("name",)),
        lambda client, _, entries: client.tenants.bulk.with_raw_response.set(tenants=entries),
        lambda p: [("tenants", p["id"])],
    ),
    "tenants_delete": _Bulk(
        "a bulk delete of tenants",
        lambda p: [p["id"]],
        lambda client, _, ids: client.tenants.bulk.with_raw_response.delete(tenant_ids=ids),
        lambda p: [("tenants", p["id"])],
        removes=True,
        limit=QUERY_LIMIT,
    ),
    "objects_subscribe": _Bulk(
        "a bulk subscription to `{collection}` objects",
        _subscriptions,
        lambda client, collection, entries: client.objects.bulk.with_raw_response.add_subscriptions(
            collection, subscriptions=entries
        ),
        _subscribed,
        merge=False,
    ),
    "objects_unsubscribe": _Bulk(
        "a bulk unsubscription from `{collection}` objects",
        _subscriptions,
        lambda client, collection, entries: client.objects.bulk.with_raw_response.delete_subscriptions(
            collection, subscriptions=entries
        ),
        _pairs,
        removes=True,
        merge=False,
    ),
}
_RANK = {action: rank for rank, action in enumerate(BULK)}


@dataclass(slots=True)
class _Sent:
    """One bulk call Knock took: its operation, and the actions behind each of its entries."""

    operation_id: str
    what: str
    group: tuple[str, str | None]
    by_entity: dict[str, list[tuple[ActionRequest, dict]]]  # entry id → its actions
    things: set[tuple]


class BulkKnock:
    """A sink over a `KnockSink`; call `flush()` after the batch, then settle what it returns."""

    name = "knock"
    transactional = False
    bulk = True

    def __init__(
        self,
        sink: KnockSink,
        max_wait: float = 60.0,
        chunk: int = BULK_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
        operation_deadline: float = OPERATION_DEADLINE,
        note: Callable[[str], None] | None = None,
    ):
        self.sink = sink
        self.max_wait = max_wait
        self.chunk = chunk
        self.sleep = sleep
        self.operation_deadline = operation_deadline
        self.note = note or (lambda text: None)  # says what the batch is waiting on Knock for
        # (action, collection) → [(request, result, its entries)], and the entries' count.
        self.pending: dict[tuple[str, str | None], list[tuple[ActionRequest, dict, list]]] = {}
        self.counts: dict[tuple[str, str | None], int] = {}
        # (thing, removes) → the highest rank of a pending action adding to (removing) it.
        self.waiting: dict[tuple[tuple, bool], int] = {}
        # Other actions, sent one at a time once the bulk operations before them completed.
        self.deferred: list[tuple[ActionRequest, dict]] = []
        self.running: list[_Sent] = []  # bulk operations Knock has not been seen to complete
        self.settled: dict[tuple[str | None, str], Settled] = {}
        self.calls = 0
        self.polls = 0

    def apply(self, request: ActionRequest) -> Any:
        bulk = BULK.get(request.action)
        if self.sink.client is None:
            self.flush()
            return self.sink.apply(request)
        if bulk is None:
            result: dict[str, Any] = {}  # filled in when it is sent (`_send_deferred`)
            self.deferred.append((request, result))
            return result
        p = request.payload
        unusable = unusable_path_param(request.action, p)
        if unusable:
            raise TerminalSinkError(unusable)
        rank, things = _RANK[request.action], bulk.things(p)
        # Sent after its opposite on the same thing only if the opposite ranks lower; a removal
        # is not sent before the other actions that came before it.
        if (bulk.removes and self.deferred) or any(
            self.waiting.get((thing, not bulk.removes), -1) > rank for thing in things
        ):
            self._drain()
        for thing in things:
            key = (thing, bulk.removes)
            self.waiting[key] = max(self.waiting.get(key, -1), rank)
        group = (request.action, p.get("collection"))
        pending = self.pending.setdefault(group, [])
        result = PAYLOAD_RESULTS[request.action](p)
        pending.append((request, result, bulk.entries(p)))
        self.counts[group] = self.counts.get(group, 0) + len(pending[-1][2])
        if self.counts[group] >= min(self.chunk, bulk.limit):
            self._send_pending()
        return result

    def flush(self) -> dict[tuple[str | None, str], Settled]:
        """Send what is pending, in Knock's execution order, then the other actions, and wait for
        every bulk operation to complete; returns {(event id, mapping key): Settled} for the
        actions that were not applied."""
        self._drain()
        self.note("")
        return self.settled

    # -- sending ---------------------------------------------------------------------------

    def _drain(self) -> None:
        self._send_pending()
        self._wait_for(self.running)
        self._send_deferred()

    def _send_pending(self) -> None:
        pending = sorted(self.pending.items(), key=lambda item: _RANK[item[0][0]])
        self.pending, self.waiting, self.counts = {}, {}, {}
        for (action, collection), actions in pending:
            bulk = BULK[action]
            limit = min(self.chunk, bulk.limit)
            chunk: list[tuple[ActionRequest, dict, list]] = []
            size = 0
            for item in actions:
                if chunk and size + len(item[2]) > limit:
                    self._send(action, collection, chunk)
                    chunk, size = [], 0
                chunk.append(item)
                size += len(item[2])
            if chunk:
                self._send(action, collection, chunk)

    def _send(self, action: str, collection: str | None, chunk: list, resends: int = 0) -> None:
        bulk = BULK[action]
        what = bulk.what.format(collection=collection)
        entries: list[Any] = []
        by_entity: dict[str, list[tuple[ActionRequest, dict]]] = {}
        at: dict[str, int] = {}
        things: set[tuple] = set()
        for request, result, own in chunk:
            things.update(bulk.things(request.payload))
            for entry in own:
                ident = _entry_id(entry)
                by_entity.setdefault(ident, []).append((request, result))
                if bulk.merge and ident in at:  # one entry a thing: Knock skips a second update
                    i = at[ident]
                    entries[i] = entry if isinstance(entry, str) else {**entries[i], **entry}
                    continue
                at[ident] = len(entries)
                entries.append(entry)
        if any(thing in sent.things for sent in self.running for thing in things):
            self._wait_for(self.running)
        answer = self._call(chunk, what, bulk, collection, entries)
        if answer is None:
            return
        operation, skipped = answer
        for _, result, _ in chunk:
            result["bulk_operation_id"] = operation.id
        redo = [item for item in chunk if any(_entry_id(e) in skipped for e in item[2])]
        if skipped:
            for ident in skipped:
                by_entity.pop(ident, None)
        self.running.append(_Sent(operation.id, what, (action, collection), by_entity, things))
        if redo:
            if resends < RESENDS:
                self._send(action, collection, redo, resends + 1)
            else:
                header = f"Knock skipped it in {what} for its limit of one update an entity a second"
                self._settle(redo, Settled("queued", header + "; it will be retried"))

    def _call(self, chunk, what: str, bulk: _Bulk, collection: str | None, entries: list):
        """(operation, ids Knock skipped) once Knock took the call, or None (its actions settled)."""
        client = self.sink.client
        endpoint = f"bulk:{next(a for a, b in BULK.items() if b is bulk)}"
        waited = 0.0
        while True:
            self.calls += 1
            self.sink.wait_turn(endpoint)
            try:
                raw = bulk.call(client, collection, entries)
                operation = raw.parse()
            except knockapi.APIStatusError as exc:
                status, wait = exc.status_code, retry_after(exc.response.headers)
                if status == 429 and waited + (wait or 1.0) <= self.max_wait:
                    self.note(f"Knock: {what} waits {wait or 1.0:.2f} s (429)")
                    self.sink.pace.hold(endpoint, wait or 1.0)
                    waited += wait or 1.0
                    continue
                message = f"Knock answered {status} to {what}: {_knock_message(exc)}"
                if status in TRANSIENT_STATUSES or status >= 500:
                    self._settle(chunk, Settled("queued", message + "; it will be retried", wait))
                else:
                    self._settle(chunk, Settled("failed", message))
                return None
            except (knockapi.APITimeoutError, knockapi.APIConnectionError) as exc:
                self._settle(
                    chunk, Settled("queued", f"cannot reach Knock for {what} ({exc}); it will be retried")
                )
                return None
            except (knockapi.KnockError, ValueError) as exc:
                self._settle(chunk, Settled("failed", str(TerminalSinkError(f"Knock: {what} failed: {exc}"))))
                return None
            return operation, _ratelimited(raw.headers)

    def _send_deferred(self) -> None:
        deferred, self.deferred = self.deferred, []
        for request, result in deferred:
            try:
                answer = self.sink.apply(request)
            except TransientSinkError as exc:
                self.settled[(request.event_id, request.mapping_key)] = Settled(
                    "queued", str(exc), exc.retry_after
                )
                continue
            except SinkError as exc:
                self.settled[(request.event_id, request.mapping_key)] = Settled("failed", str(exc))
                continue
            if isinstance(answer, dict):
                result.update(answer)

    # -- following bulk operations -----------------------------------------------------------

    def _wait_for(self, running: list[_Sent]) -> None:
        """Follow every running operation until it ends (or the deadline passes), then settle
        the actions it did not apply."""
        if not running:
            return
        started = time.monotonic()
        deadline = started + self.operation_deadline
        pause = FIRST_POLL
        left = list(running)
        running.clear()
        while left:
            self.note(f"waiting on Knock: {len(left)} bulk operation(s)")
            self.sleep(pause)
            still = []
            for sent in left:
                operation = self._look(sent)
                if operation is None or operation.status in ("queued", "processing"):
                    still.append(sent)
                else:
                    self._ended(sent, operation)
            left = still
            if left and time.monotonic() + pause > deadline:
                for sent in left:
                    message = (
                        f"Knock had not completed {sent.what} (bulk operation {sent.operation_id}) "
                        f"after {self.operation_deadline:.0f} s; it will be retried"
                    )
                    self._settle_sent(sent, Settled("queued", message))
                return
            pause = min(max(FIRST_POLL, (time.monotonic() - started) / 4), LAST_POLL)

    def _look(self, sent: _Sent):
        """The operation as Knock has it, or None when Knock did not say this time."""
        self.polls += 1
        self.sink.wait_turn("bulk_operation")
        try:
            return self.sink.client.bulk_operations.get(sent.operation_id)
        except knockapi.APIStatusError as exc:
            wait = retry_after(exc.response.headers)
            if exc.status_code == 429 and wait:
                self.sink.pace.hold("bulk_operation", wait)
            return None
        except (knockapi.APITimeoutError, knockapi.APIConnectionError):
            return None

    def _ended(self, sent: _Sent, operation) -> None:
        if operation.status != "completed":
            message = f"Knock's bulk operation {sent.operation_id} ({sent.what}) {operation.status}"
            self._settle_sent(sent, Settled("queued", message + "; it will be retried"))
            return
        for item in operation.error_items or ():
            extra = item.model_extra or {}
            reason = extra.get("message") or extra.get("error") or "listed among the operation's error items"
            fate = Settled(
                "failed",
                f"Knock did not apply {sent.what} to `{item.id}` "
                f"(bulk operation {sent.operation_id}): {reason}",
            )
            for request, _ in sent.by_entity.get(item.id, ()):
                self.settled[(request.event_id, request.mapping_key)] = fate

    def _settle_sent(self, sent: _Sent, settled: Settled) -> None:
        for actions in sent.by_entity.values():
            for request, _ in actions:
                self.settled[(request.event_id, request.mapping_key)] = settled

    def _settle(self, chunk, settled: Settled) -> None:
        for request, *_ in chunk:
            self.settled[(request.event_id, request.mapping_key)] = settled


def _ratelimited(headers) -> set[str]:
    """Ids Knock skipped for its batch limit, from its `x-ratelimited-{param}` headers."""
    skipped: set[str] = set()
    for name, value in headers.items():
        if name.lower().startswith("x-ratelimited-"):
            skipped.update(part.strip() for part in value.split(",") if part.strip())
    return skipped

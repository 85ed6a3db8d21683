"""The `knock` sink: actions sent to Knock through the official `knockapi` SDK.

The SDK's own retries are off: a transient failure (timeout, connection error, 408/409/429/5xx)
becomes `TransientSinkError` and the receiver retries it with its own backoff. A workflow trigger
(the one call Knock deduplicates) carries an Idempotency-Key derived from the event id and the
mapping, so a retried trigger never runs twice (see `Engine.apply` for the key after a refusal).

Calls to each endpoint are paced by its rate-limit tier (`knock_tiers`), `rate_limit_scale` times
faster where a test's fake Knock runs its clock faster; a 429's Retry-After holds that endpoint.
What Knock would refuse is refused here first, with a message saying what to change: ids the SDK
cannot put in a URL (empty, `.`, `..`); a subscription over 100 recipients is split into calls of
100 instead. Custom properties named like one of Knock's own fields (`RESERVED_PROPERTIES`: a
whole row sent as properties may hold a `created_at` or `preferences` column) are sent as
`custom_<name>`, so Knock never reads a Clay cell as a user's preferences or creation date.
"""

from __future__ import annotations

import email.utils
import threading
import time
from datetime import UTC, datetime
from typing import Any

import knockapi
from knockapi import Knock

from ..actions import KEYED_ACTIONS, USER_FIELDS
from ..engine import ActionRequest
from ..errors import TerminalSinkError, TransientSinkError
from .knock_tiers import Pace

DEFAULT_TIMEOUT = 10.0
TRANSIENT_STATUSES = {408, 409, 429}
OBJECT_FIELDS = ("name", "locale", "timezone")
# Names Knock reads as its own fields of a user, an object or a tenant, never as custom properties.
RESERVED_PROPERTIES = frozenset(
    {"id", "collection", "__typename", "created_at", "updated_at", "channel_data", "preferences", "settings"}
)
RESERVED_PREFIX = "custom_"
SUBSCRIPTION_RECIPIENTS = 100  # recipients of one subscription call (or one bulk entry), Knock's limit
# Parameters that become a segment of the call's URL, per action type.
PATH_PARAMS = {
    "users_identify": ("id",),
    "users_delete": ("id",),
    "objects_set": ("collection", "id"),
    "objects_delete": ("collection", "id"),
    "tenants_set": ("id",),
    "tenants_delete": ("id",),
    "objects_subscribe": ("collection", "id"),
    "objects_unsubscribe": ("collection", "id"),
    "audiences_add_member": ("key",),
    "audiences_remove_member": ("key",),
    "workflows_trigger": ("key",),
    "workflows_cancel": ("key",),
}


def retry_after(headers) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), else None."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _knock_message(exc: knockapi.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("code")
        if message:
            return str(message)[:500]
    try:
        return exc.response.text[:500] or exc.message
    except Exception:
        return exc.message


def _custom(payload: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Custom properties, less the ones a named parameter sets (the named parameter wins); one
    named like a field of Knock's own goes as `custom_<name>`."""
    properties = payload.get("properties") or {}
    out = {}
    for k, v in properties.items():
        if k in fields:
            continue
        out[RESERVED_PREFIX + k if k in RESERVED_PROPERTIES else k] = v
    return out


def unusable_path_param(action: str, payload: dict[str, Any]) -> str | None:
    """Why a parameter cannot be a segment of the call's URL (None when all can)."""
    for name in PATH_PARAMS.get(action, ()):
        value = payload.get(name)
        if isinstance(value, str) and value.strip(".") == "":
            shown = "an empty string" if value == "" else f"`{value}`"
            return (
                f"param `{name}` is {shown}, which cannot name anything in Knock's API (it is part of "
                "the URL); map it to another column or fix the row"
            )
    return None


def _named(payload: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: payload[f] for f in fields if f in payload}


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def _member(user: Any, tenant: str | None) -> dict[str, Any]:
    member: dict[str, Any] = {"user": user if isinstance(user, dict) else {"id": user}}
    if tenant:
        member["tenant"] = tenant
    return member


def _named_thing(p: dict[str, Any]) -> dict[str, Any]:
    return {**({"collection": p["collection"]} if "collection" in p else {}), "id": p["id"]}


# What these actions come to in the log: made from the payload alone, the same whether the
# action went one at a time or in bulk (`workbench.backfill.knock`).
PAYLOAD_RESULTS = {
    "users_identify": _named_thing,
    "users_delete": lambda p: {**_named_thing(p), "deleted": True},
    "objects_set": _named_thing,
    "objects_delete": lambda p: {**_named_thing(p), "deleted": True},
    "tenants_set": _named_thing,
    "tenants_delete": lambda p: {**_named_thing(p), "deleted": True},
    "objects_subscribe": lambda p: {**_named_thing(p), "subscribed": len(p["recipients"])},
    "objects_unsubscribe": lambda p: {**_named_thing(p), "unsubscribed": len(p["recipients"])},
}


class _RateLimit:
    """At most `per_second` calls a second across this process's threads (on top of the tiers)."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class KnockSink:
    """Applies actions to Knock through the `knockapi` SDK."""

    name = "knock"
    transactional = False
    bulk = True  # Knock's bulk endpoints (`workbench.backfill.knock.BulkKnock`)

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 0,
        rate_per_second: float | None = None,
        api_key_name: str = "KNOCK_API_KEY",
        rate_limit_scale: float = 1.0,
    ):
        self.api_key_name = api_key_name
        self.client = (
            Knock(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
            if api_key
            else None
        )
        self._rate = _RateLimit(rate_per_second) if rate_per_second else None
        self.pace = Pace(rate_limit_scale or 1.0)

    def wait_turn(self, endpoint: str) -> None:
        """Wait for a call to `endpoint` (a key of `knock_tiers.ENDPOINTS`) to be within Knock's limits."""
        if self._rate is not None:
            self._rate.wait()
        self.pace.wait(endpoint)

    def apply(self, request: ActionRequest) -> Any:
        if self.client is None:
            raise TerminalSinkError(
                f"the knock sink has no API key: set {self.api_key_name} on the receiver, restart it, "
                "then replay this event"
            )
        handler = getattr(self, f"_{request.action}", None)
        if handler is None:
            raise TerminalSinkError(f"the knock sink does not support `{request.action}`")
        unusable = unusable_path_param(request.action, request.payload)
        if unusable:
            raise TerminalSinkError(unusable)
        key = request.idempotency_key if request.action in KEYED_ACTIONS else None
        options = {"idempotency_key": key} if key else {}
        try:
            answer = handler(request.payload, options)
        except knockapi.APITimeoutError:
            raise TransientSinkError(
                f"Knock did not answer {request.action} in time; it will be retried"
            ) from None
        except knockapi.APIConnectionError as exc:
            raise TransientSinkError(
                f"cannot reach Knock for {request.action} ({exc.__cause__ or exc}); it will be retried"
            ) from None
        except knockapi.APIStatusError as exc:
            status = exc.status_code
            message = f"Knock answered {status} to {request.action}: {_knock_message(exc)}"
            if status in TRANSIENT_STATUSES or status >= 500:
                wait = retry_after(exc.response.headers)
                if status == 429 and wait:
                    self.pace.hold(request.action, wait)
                raise TransientSinkError(message + "; it will be retried", retry_after=wait) from None
            if status in (401, 403):
                message += (
                    f"; check that {self.api_key_name} holds the secret API key (sk_…) of the Knock "
                    "environment this sink sends to, then replay the event"
                )
            raise TerminalSinkError(message) from None
        except (knockapi.KnockError, ValueError) as exc:  # the SDK refuses some values with ValueError
            raise TerminalSinkError(f"Knock {request.action} failed: {exc}") from None
        made = PAYLOAD_RESULTS.get(request.action)
        return made(request.payload) if made is not None else answer

    # One method per action type, named after it; `options` carries the idempotency key. The
    # result is the call's answer, or, for the `PAYLOAD_RESULTS` actions, made from the payload.
    # Each waits for its endpoint's turn right before its call.

    def _users_identify(self, p, options):
        self.wait_turn("users_identify")
        self.client.users.update(
            p["id"], **_named(p, USER_FIELDS), extra_body=_custom(p, USER_FIELDS), **options
        )

    def _users_delete(self, p, options):
        self.wait_turn("users_delete")
        self.client.users.delete(p["id"], **options)

    def _objects_set(self, p, options):
        self.wait_turn("objects_set")
        self.client.objects.set(
            p["collection"],
            p["id"],
            **_named(p, OBJECT_FIELDS),
            extra_body=_custom(p, OBJECT_FIELDS),
            **options,
        )

    def _objects_delete(self, p, options):
        self.wait_turn("objects_delete")
        self.client.objects.delete(p["collection"], p["id"], **options)

    def _tenants_set(self, p, options):
        self.wait_turn("tenants_set")
        self.client.tenants.set(p["id"], **_named(p, ("name",)), extra_body=_custom(p, ("name",)), **options)

    def _tenants_delete(self, p, options):
        self.wait_turn("tenants_delete")
        self.client.tenants.delete(p["id"], **options)

    def _objects_subscribe(self, p, options):
        for recipients in _chunks(p["recipients"], SUBSCRIPTION_RECIPIENTS):
            self.wait_turn("objects_subscribe")
            self.client.objects.add_subscriptions(p["collection"], p["id"], recipients=recipients, **options)

    def _objects_unsubscribe(self, p, options):
        for recipients in _chunks(p["recipients"], SUBSCRIPTION_RECIPIENTS):
            self.wait_turn("objects_unsubscribe")
            self.client.objects.delete_subscriptions(
                p["collection"], p["id"], recipients=recipients, **options
            )

    def _audiences_add_member(self, p, options):
        members = [_member(u, p.get("tenant")) for u in p["users"]]
        if p.get("create_audience"):
            options = {**options, "create_audience": True}
        self.wait_turn("audiences_add_member")
        self.client.audiences.add_members(p["key"], members=members, **options)
        return {"key": p["key"], "added": len(members)}

    def _audiences_remove_member(self, p, options):
        members = [_member(u, p.get("tenant")) for u in p["users"]]
        self.wait_turn("audiences_remove_member")
        self.client.audiences.remove_members(p["key"], members=members, **options)
        return {"key": p["key"], "removed": len(members)}

    def _workflows_trigger(self, p, options):
        extra = {k: p[k] for k in ("actor", "data", "tenant", "cancellation_key") if k in p}
        self.wait_turn("workflows_trigger")
        response = self.client.workflows.trigger(p["key"], recipients=p["recipients"], **extra, **options)
        return {"workflow_run_id": response.workflow_run_id}

    def _workflows_cancel(self, p, options):
        extra = {"recipients": p["recipients"]} if p.get("recipients") else {}
        self.wait_turn("workflows_cancel")
        self.client.workflows.cancel(p["key"], cancellation_key=p["cancellation_key"], **extra, **options)
        return {"key": p["key"], "cancellation_key": p["cancellation_key"], "cancelled": True}

"""The `knock` sink: actions sent to Knock through the official `knockapi` SDK.

The SDK's own retries are off: a transient failure (timeout, connection error, 408/409/429/5xx)
becomes `TransientSinkError` and the receiver retries it with its own backoff. A workflow trigger
(the one call Knock deduplicates) carries an Idempotency-Key derived from the event id and the
mapping, so a retried trigger never runs twice (see `Engine.apply` for the key after a refusal).
"""

from __future__ import annotations

import email.utils
import threading
import time
from datetime import UTC, datetime
from typing import Any

import knockapi
from knockapi import Knock

from ..actions import KEYED_ACTIONS
from ..engine import ActionRequest
from ..errors import TerminalSinkError, TransientSinkError

DEFAULT_TIMEOUT = 10.0
TRANSIENT_STATUSES = {408, 409, 429}
USER_FIELDS = ("name", "email", "phone_number", "avatar", "locale", "timezone")
OBJECT_FIELDS = ("name", "locale", "timezone")


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
    """Custom properties, less the ones a named parameter sets (the named parameter wins)."""
    properties = payload.get("properties") or {}
    return {k: v for k, v in properties.items() if k not in fields and k != "id"}


def _named(payload: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: payload[f] for f in fields if f in payload}


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
    """At most `per_second` calls a second across this process's threads."""

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

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 0,
        rate_per_second: float | None = None,
        api_key_name: str = "KNOCK_API_KEY",
    ):
        self.api_key_name = api_key_name
        self.client = (
            Knock(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
            if api_key
            else None
        )
        self._rate = _RateLimit(rate_per_second) if rate_per_second else None

    def apply(self, request: ActionRequest) -> Any:
        if self.client is None:
            raise TerminalSinkError(
                f"the knock sink has no API key: set {self.api_key_name} on the receiver, restart it, "
                "then replay this event"
            )
        handler = getattr(self, f"_{request.action}", None)
        if handler is None:
            raise TerminalSinkError(f"the knock sink does not support `{request.action}`")
        if self._rate is not None:
            self._rate.wait()
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
                raise TransientSinkError(
                    message + "; it will be retried", retry_after=retry_after(exc.response.headers)
                ) from None
            if status in (401, 403):
                message += (
                    f"; check that {self.api_key_name} holds the secret API key (sk_…) of the Knock "
                    "environment this sink sends to, then replay the event"
                )
            raise TerminalSinkError(message) from None
        except knockapi.KnockError as exc:
            raise TerminalSinkError(f"Knock {request.action} failed: {exc}") from None
        made = PAYLOAD_RESULTS.get(request.action)
        return made(request.payload) if made is not None else answer

    # One method per action type, named after it; `options` carries the idempotency key. The
    # result is the call's answer, or, for the `PAYLOAD_RESULTS` actions, made from the payload.

    def _users_identify(self, p, options):
        self.client.users.update(
            p["id"], **_named(p, USER_FIELDS), extra_body=_custom(p, USER_FIELDS), **options
        )

    def _users_delete(self, p, options):
        self.client.users.delete(p["id"], **options)

    def _objects_set(self, p, options):
        self.client.objects.set(
            p["collection"],
            p["id"],
            **_named(p, OBJECT_FIELDS),
            extra_body=_custom(p, OBJECT_FIELDS),
            **options,
        )

    def _objects_delete(self, p, options):
        self.client.objects.delete(p["collection"], p["id"], **options)

    def _tenants_set(self, p, options):
        self.client.tenants.set(p["id"], **_named(p, ("name",)), extra_body=_custom(p, ("name",)), **options)

    def _tenants_delete(self, p, options):
        self.client.tenants.delete(p["id"], **options)

    def _objects_subscribe(self, p, options):
        self.client.objects.add_subscriptions(p["collection"], p["id"], recipients=p["recipients"], **options)

    def _objects_unsubscribe(self, p, options):
        self.client.objects.delete_subscriptions(
            p["collection"], p["id"], recipients=p["recipients"], **options
        )

    def _audiences_add_member(self, p, options):
        members = [_member(u, p.get("tenant")) for u in p["users"]]
        self.client.audiences.add_members(p["key"], members=members, **options)
        return {"key": p["key"], "added": len(members)}

    def _audiences_remove_member(self, p, options):
        members = [_member(u, p.get("tenant")) for u in p["users"]]
        self.client.audiences.remove_members(p["key"], members=members, **options)
        return {"key": p["key"], "removed": len(members)}

    def _workflows_trigger(self, p, options):
        extra = {k: p[k] for k in ("actor", "data", "tenant", "cancellation_key") if k in p}
        response = self.client.workflows.trigger(p["key"], recipients=p["recipients"], **extra, **options)
        return {"workflow_run_id": response.workflow_run_id}

    def _workflows_cancel(self, p, options):
        extra = {"recipients": p["recipients"]} if p.get("recipients") else {}
        self.client.workflows.cancel(p["key"], cancellation_key=p["cancellation_key"], **extra, **options)
        return {"key": p["key"], "cancellation_key": p["cancellation_key"], "cancelled": True}

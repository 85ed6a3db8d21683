"""A fake Knock API on loopback, as strict as Knock's published description of its API.

Every request is checked against `specs/api-openapi.yml` (Knock's API description) (`knock_spec`): one the spec
does not allow is refused as Knock refuses it (422, `invalid_params`, in Knock's error shape) and
counted; a refusal of a request the project's SDK sent fails the test that made it (see the
`fake_knock` fixture) and shows in the suite's closing contract line. Beyond the schemas it keeps
the limits Knock documents: 100 recipients a subscription call, 1,000 a trigger and 1,000 entries
a bulk call, 256 kB of properties for a user (merged), workflows that must exist, audiences that
must exist unless `create_audience` is set, an actor that must have been identified.

Each endpoint is rate-limited by its `x-ratelimit-tier` (1, 5, 60, 200, 1,000 requests a second,
times `speed`), answering 429 with `Retry-After` (and `retry-after-ms`); bulk calls run in the
background (`knock_bulk`). An Idempotency-Key on a trigger is kept only with a 2xx answer, as Knock
documents: a later request with the key gets that answer again (`idempotent-replayed: true`), or a
422 when its parameters differ; a refusal or an outage is not remembered.

It records every request (method, path, JSON body, Idempotency-Key, status). `fail(...)` queues
failures (a status with an optional Retry-After, or a delay) that the next matching requests get
instead of their answer.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask, g, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

from .knock_bulk import (
    MAX_SUBSCRIPTION_RECIPIENTS,
    BulkOperations,
    json_size,
    recipient_id,
    register_bulk_endpoints,
)
from .knock_spec import CONTRACT, knock_spec, spec_missing_reason, tier_rates

API_KEY = "sk_test_fake_knock"
SDK_AGENT = "Knock/Python"  # the knockapi SDK's User-Agent: what the project sends
# Workflows committed in the fake's environment (the tests' configs trigger these).
KNOWN_WORKFLOWS = frozenset(
    {"new-lead", "new-high-intent-lead", "lead-alert", "new-enriched-lead", "wf", "w", "k"}
)
MAX_RECIPIENTS = 1000
MAX_PROPERTIES_BYTES = 256 * 1024
# Keys of a user that are not custom properties (the 256 kB limit counts the others).
USER_FIELDS = {"name", "email", "phone_number", "avatar", "locale", "timezone", "created_at"}
USER_FIELDS |= {"channel_data", "preferences"}


@dataclass
class Recorded:
    method: str
    path: str
    json: Any
    idempotency_key: str | None
    status: int = 0
    query: dict[str, list[str]] = field(default_factory=dict)
    refused: str | None = None  # why the spec refused it


@dataclass
class Fault:
    status: int | None = None  # None: answer normally, after `delay`
    retry_after: str | None = None
    delay: float = 0.0
    method: str | None = None
    path: str | None = None  # a prefix such as "/v1/workflows"
    body: dict | None = None
    until: threading.Event | None = None  # hold the request until this is set (at most 60 s)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or path.startswith(self.path)
        )


@dataclass
class FakeKnockState:
    requests: list[Recorded] = field(default_factory=list)
    users: dict[str, dict] = field(default_factory=dict)
    objects: dict[tuple[str, str], dict] = field(default_factory=dict)
    tenants: dict[str, dict] = field(default_factory=dict)
    subscriptions: set[tuple[str, str, str]] = field(default_factory=set)
    audiences: set[str] = field(default_factory=set)
    audience_members: set[tuple[str, str, str]] = field(default_factory=set)
    workflows: set[str] = field(default_factory=lambda: set(KNOWN_WORKFLOWS))
    runs: list[dict] = field(default_factory=list)
    # Idempotency-Key of a trigger -> (its parameters, the 2xx body it was answered with)
    answers_by_key: dict[str, tuple[Any, dict]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)  # spec refusals of the project's own requests


def now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def knock_error(status: int, code: str, message: str, kind: str = "invalid_request_error"):
    """Knock's error shape."""
    return jsonify({"code": code, "message": message, "status": status, "type": kind}), status


class TierLimiter:
    """A token bucket per operation: `rate` requests a second (times `speed`), a burst of one
    more than that (Knock does not say how it counts; the slack absorbs loopback jitter)."""

    def __init__(self, speed: float):
        self.speed = speed
        self.rates = tier_rates()
        self.buckets: dict[str, tuple[float, float]] = {}  # operation -> (tokens, at)
        self.lock = threading.Lock()

    def take(self, operation: str, tier: int | None) -> float | None:
        """None when the request may go, else the seconds until it may."""
        if tier is None or self.speed <= 0:
            return None
        rate = self.rates[tier] * self.speed
        capacity = self.rates[tier] + 1
        with self.lock:
            now = time.monotonic()
            tokens, at = self.buckets.get(operation, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens >= 1:
                self.buckets[operation] = (tokens - 1, now)
                return None
            self.buckets[operation] = (tokens, now)
            return (1 - tokens) / rate


def create_fake_knock(api_key: str = API_KEY, speed: float = 1.0, bulk_seconds: float = 0.2):
    """The fake's Flask app, its state and lock, and its bulk operations (a test without Knock's
    API description is skipped, saying where it was looked for)."""
    reason = spec_missing_reason()
    if reason:
        pytest.skip(reason)
    spec = knock_spec()
    app = Flask("fake_knock")
    state = FakeKnockState()
    lock = threading.Lock()
    limiter = TierLimiter(speed)
    bulk = BulkOperations(state, lock, speed=speed, seconds=bulk_seconds)

    @app.before_request
    def check_request():
        query = {k: request.args.getlist(k) for k in request.args}
        body = request.get_json(silent=True)
        record = Recorded(
            request.method, request.path, body, request.headers.get("Idempotency-Key"), 0, query
        )
        g.record = record
        with lock:
            state.requests.append(record)
        if request.headers.get("Authorization") != f"Bearer {api_key}":
            record.status = 401
            return knock_error(401, "api_key_missing", "The API key is invalid", "authentication_error")
        if request.get_data() and body is None:
            record.status, record.refused = 400, "the body is not JSON"
            return knock_error(400, "invalid_params", "The request body is not valid JSON")
        op, refusal = spec.check(request.method, request.path, query, body)
        by_sdk = request.headers.get("User-Agent", "").startswith(SDK_AGENT)
        CONTRACT.count(refusal, by_sdk)
        if refusal is not None:
            record.refused = refusal
            if by_sdk:
                with lock:
                    state.breaches.append(f"{request.method} {request.path}: {refusal}")
            if op is None:
                record.status = 404
                return knock_error(404, "resource_missing", refusal)
            record.status = 422
            return knock_error(422, "invalid_params", refusal)
        g.operation = op
        wait = limiter.take(op.operation_id, op.tier)
        if wait is not None:
            record.status = 429
            headers = {"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": f"{wait * 1000:.0f}"}
            response, status = knock_error(429, "rate_limited", f"Rate limit exceeded for {op.operation_id}")
            return response, status, headers
        with lock:
            fault = next((f for f in state.faults if f.matches(request.method, request.path)), None)
            if fault is not None:
                state.faults.remove(fault)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.until is not None:
                fault.until.wait(60)
            if fault.status is not None:
                record.status = fault.status
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                body = fault.body or {"code": "scripted_failure", "message": f"scripted {fault.status}"}
                return jsonify(body), fault.status, headers
        keyed = record.idempotency_key if op.spec.get("x-idempotent") else None
        if keyed:
            with lock:
                first = state.answers_by_key.get(keyed)
            if first is not None:
                if first[0] != body:
                    record.status = 422
                    return knock_error(
                        422, "invalid_params", "Idempotency-Key was already used with different parameters"
                    )
                record.status = 200
                return jsonify(first[1]), 200, {"idempotent-replayed": "true"}
        record.status = 200
        return None

    @app.after_request
    def keep_status(response):
        if "record" in g:
            g.record.status = response.status_code
        op = g.get("operation")
        if op is not None and 200 <= response.status_code < 300:
            # The fake's answers are held to the spec too: the SDK parses what Knock would send.
            body = response.get_json(silent=True) if response.get_data() else None
            wrong = spec.check_answer(op, response.status_code, body)
            CONTRACT.answered()
            if wrong is not None:
                with lock:
                    state.breaches.append(f"the fake's answer to {request.method} {request.path}: {wrong}")
        return response

    def entity(kind: str, ident: str, data: dict, **extra) -> dict:
        return {"__typename": kind, "id": ident, "updated_at": now_text(), **extra, **data}

    def too_big(user: dict) -> str | None:
        size = json_size({k: v for k, v in user.items() if k not in USER_FIELDS})
        if size > MAX_PROPERTIES_BYTES:
            return f"properties are {size:,} bytes; the limit is {MAX_PROPERTIES_BYTES:,}"
        return None

    def identify(user_id: str, data: dict) -> str | None:
        """Merge `data` into a user (lock held); why not, if Knock would refuse it."""
        merged = {**state.users.get(user_id, {}), **data}
        problem = too_big(merged)
        if problem is None:
            state.users[user_id] = merged
        return problem

    def inline(recipient: Any) -> None:
        """A recipient or actor given inline is identified (or set) on the way (lock held)."""
        if isinstance(recipient, dict):
            data = {k: v for k, v in recipient.items() if k not in ("id", "collection")}
            if "collection" in recipient:
                state.objects.setdefault((recipient["collection"], recipient["id"]), {}).update(data)
            else:
                identify(recipient["id"], data)

    @app.put("/v1/users/<user_id>")
    def users_update(user_id):
        with lock:
            problem = identify(user_id, request.get_json())
            if problem:
                return knock_error(422, "invalid_params", problem)
            return jsonify(entity("User", user_id, state.users[user_id]))

    @app.delete("/v1/users/<user_id>")
    def users_delete(user_id):
        with lock:
            state.users.pop(user_id, None)
        return "", 204

    @app.put("/v1/objects/<collection>/<object_id>")
    def objects_set(collection, object_id):
        with lock:
            obj = state.objects.setdefault((collection, object_id), {})
            obj.update(request.get_json())
            return jsonify(entity("Object", object_id, obj, collection=collection))

    @app.delete("/v1/objects/<collection>/<object_id>")
    def objects_delete(collection, object_id):
        with lock:
            state.objects.pop((collection, object_id), None)
        return "", 204

    @app.route("/v1/objects/<collection>/<object_id>/subscriptions", methods=["POST", "DELETE"])
    def subscriptions(collection, object_id):
        recipients = request.get_json()["recipients"]
        if len(recipients) > MAX_SUBSCRIPTION_RECIPIENTS:
            message = f"{len(recipients)} recipients; a call takes at most {MAX_SUBSCRIPTION_RECIPIENTS}"
            return knock_error(422, "invalid_params", message)
        out = []
        with lock:
            for r in recipients:
                key = (collection, object_id, recipient_id(r))
                if request.method == "POST":
                    inline(r)
                    state.subscriptions.add(key)
                else:
                    state.subscriptions.discard(key)
                if isinstance(r, dict) and "collection" in r:
                    recipient = entity("Object", r["id"], {}, collection=r["collection"])
                else:
                    recipient = entity("User", recipient_id(r), {})
                out.append(
                    {
                        "__typename": "Subscription",
                        "object": entity("Object", object_id, {}, collection=collection),
                        "recipient": recipient,
                        "inserted_at": now_text(),
                        "updated_at": now_text(),
                    }
                )
        return jsonify(out)

    @app.put("/v1/tenants/<tenant_id>")
    def tenants_set(tenant_id):
        with lock:
            tenant = state.tenants.setdefault(tenant_id, {})
            tenant.update(request.get_json())
            return jsonify(entity("Tenant", tenant_id, tenant))

    @app.delete("/v1/tenants/<tenant_id>")
    def tenants_delete(tenant_id):
        with lock:
            state.tenants.pop(tenant_id, None)
        return "", 204

    @app.route("/v1/audiences/<key>/members", methods=["POST", "DELETE"])
    def audience_members(key):
        members = request.get_json()["members"]
        create = request.args.get("create_audience") == "true"
        with lock:
            if key not in state.audiences:
                if request.method == "POST" and create:
                    state.audiences.add(key)
                else:
                    return knock_error(404, "resource_missing", f"audience `{key}` does not exist")
            for m in members:
                item = (key, m["user"]["id"], m.get("tenant") or "")
                if request.method == "POST":
                    inline(m["user"])
                    state.audience_members.add(item)
                else:
                    state.audience_members.discard(item)
        return "", 204

    @app.post("/v1/workflows/<key>/trigger")
    def workflows_trigger(key):
        body = request.get_json()
        idem = request.headers.get("Idempotency-Key")
        recipients = body["recipients"]
        if key not in state.workflows:
            return knock_error(404, "workflow_missing", f"workflow `{key}` was not found")
        if len(recipients) > MAX_RECIPIENTS:
            return knock_error(
                422, "invalid_params", f"{len(recipients)} recipients; a trigger takes {MAX_RECIPIENTS}"
            )
        with lock:
            if idem and idem in state.answers_by_key:  # a concurrent request with the key ran it
                return jsonify(state.answers_by_key[idem][1]), 200, {"idempotent-replayed": "true"}
            actor, tenant = body.get("actor"), body.get("tenant")
            if isinstance(actor, str) and actor not in state.users:
                return knock_error(422, "actor_missing", f"actor `{actor}` has not been identified")
            for r in [*recipients, actor]:
                inline(r)
            if isinstance(tenant, dict):
                state.tenants.setdefault(tenant["id"], {}).update(
                    {k: v for k, v in tenant.items() if k != "id"}
                )
                tenant = tenant["id"]
            run_id = str(uuid.uuid4())
            answer = {"workflow_run_id": run_id}
            if idem:
                state.answers_by_key[idem] = (body, answer)
            for r in recipients:
                rid = recipient_id(r)
                state.runs.append(
                    {
                        "workflow_run_id": run_id,
                        "workflow": key,
                        "recipient": rid,
                        "recipient_known": rid in state.users
                        or (isinstance(r, dict) and (r.get("collection"), rid) in state.objects),
                        "actor": recipient_id(actor) if actor is not None else None,
                        "data": body.get("data"),
                        "tenant": tenant,
                        "cancellation_key": body.get("cancellation_key"),
                        "idempotency_key": idem,
                        "status": "triggered",
                    }
                )
        return jsonify(answer)

    @app.post("/v1/workflows/<key>/cancel")
    def workflows_cancel(key):
        body = request.get_json()
        recipients = {recipient_id(r) for r in body.get("recipients") or []}
        with lock:
            for run in state.runs:
                if (
                    run["workflow"] == key
                    and run["cancellation_key"] == body.get("cancellation_key")
                    and (not recipients or run["recipient"] in recipients)
                ):
                    run["status"] = "cancelled"
        return "", 204

    register_bulk_endpoints(app, bulk, identify)
    return app, state, lock, bulk


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # the recorded requests say enough
        pass


class FakeKnock:
    """The fake served on a loopback thread; `url` is its base URL, `stop()` ends it.

    `speed` runs Knock's clock that many times faster: rate limits, the batch limit of one update
    an entity a second and the time a bulk operation takes (`bulk_seconds` at speed 1)."""

    def __init__(self, api_key: str = API_KEY, speed: float = 1.0, bulk_seconds: float = 0.2):
        self.api_key = api_key
        self.speed = speed
        self.app, self.state, self._lock, self.bulk = create_fake_knock(api_key, speed, bulk_seconds)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-knock", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self.bulk.stop()

    def fail(
        self,
        status: int | None = 500,
        times: int = 1,
        *,
        retry_after: str | float | None = None,
        delay: float = 0.0,
        method: str | None = None,
        path: str | None = None,
        body: dict | None = None,
        until: threading.Event | None = None,
    ) -> None:
        """Make the next `times` matching requests fail with `status` (None: only slow them by `delay`,
        or hold them until `until` is set)."""
        with self._lock:
            for _ in range(times):
                self.state.faults.append(
                    Fault(
                        status,
                        None if retry_after is None else str(retry_after),
                        delay,
                        method,
                        path,
                        body,
                        until,
                    )
                )

    def fail_bulk_items(self, *ids: str, message: str = "the entry could not be applied") -> None:
        """Bulk operations list these ids among their error items instead of applying them."""
        with self._lock:
            for ident in ids:
                self.bulk.failing[ident] = message

    def skip_bulk_once(self, *ids: str) -> None:
        """The next bulk call naming these ids skips them, as Knock's batch limit does (`x-ratelimited-…`)."""
        with self._lock:
            self.bulk.skip_once.update(ids)  # a Counter: each call skips once more

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.state.requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    def calls(self) -> list[Recorded]:
        """Requests other than the polling of bulk operations."""
        with self._lock:
            return [r for r in self.state.requests if not r.path.startswith("/v1/bulk_operations/")]

    def runs(self, workflow: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self.state.runs if workflow is None or r["workflow"] == workflow]

    def breaches(self) -> list[str]:
        with self._lock:
            return list(self.state.breaches)


TEST_SPEED = 100.0  # the tests run Knock's clock 100 times faster: no test waits out a real tier
# The knock sink in tests paces itself at half the fake's limits, so that loopback jitter (a call
# delayed, the next one not) never turns into a 429 or a skipped entity a test did not script.
SINK_RATE_SCALE = TEST_SPEED / 2


@pytest.fixture
def fake_knock():
    """A fake Knock API on a loopback port for one test; the test fails if the project sent it a
    request Knock's API description does not allow."""
    reason = spec_missing_reason()
    if reason:
        pytest.skip(reason)
    fake = FakeKnock(speed=TEST_SPEED)
    yield fake
    fake.stop()
    breaches = fake.breaches()
    assert not breaches, "the project sent Knock requests its API description refuses:\n" + "\n".join(
        breaches
    )

"""A fake Knock API on loopback: the endpoints the knock sink calls, with scripted faults.

It records every request (method, path, JSON body, Idempotency-Key), keeps users, objects,
tenants, subscriptions, audience members and workflow runs, and treats a trigger's
Idempotency-Key as Knock documents it: a key seen before is answered with its first answer (a
run, or a refusal), and refused when the parameters differ. An outage (5xx, 429, 408, 409) is not
an answer Knock keeps. `fail(...)` queues failures (a status with an optional Retry-After, or a
delay) that the next matching requests get instead.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

API_KEY = "sk_test_fake_knock"


@dataclass
class Recorded:
    method: str
    path: str
    json: Any
    idempotency_key: str | None
    status: int = 0


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
    audience_members: set[tuple[str, str, str]] = field(default_factory=set)
    runs: list[dict] = field(default_factory=list)
    # Idempotency-Key of a trigger -> (its parameters, the HTTP status and body it was answered with)
    answers_by_key: dict[str, tuple[Any, int, dict]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _recipient(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "collection" in value:
        return f"{value['collection']}/{value['id']}"
    return value["id"]


def create_fake_knock(api_key: str = API_KEY) -> tuple[Flask, FakeKnockState, threading.Lock]:
    app = Flask("fake_knock")
    state = FakeKnockState()
    lock = threading.Lock()

    @app.before_request
    def fault_and_auth():
        record = Recorded(
            request.method,
            request.path,
            request.get_json(silent=True),
            request.headers.get("Idempotency-Key"),
        )
        with lock:
            state.requests.append(record)
            fault = next((f for f in state.faults if f.matches(request.method, request.path)), None)
            if fault is not None:
                state.faults.remove(fault)
        if request.headers.get("Authorization") != f"Bearer {api_key}":
            record.status = 401
            return jsonify({"code": "unauthenticated", "message": "The API key is invalid"}), 401
        keyed = record.idempotency_key if request.path.endswith("/trigger") else None
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.until is not None:
                fault.until.wait(60)
            if fault.status is not None:
                record.status = fault.status
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                body = fault.body or {"code": "scripted_failure", "message": f"scripted {fault.status}"}
                if keyed and fault.status < 500 and fault.status not in (408, 409, 429):
                    with lock:  # a refusal is the key's answer, like a run
                        state.answers_by_key.setdefault(keyed, (record.json, fault.status, body))
                return jsonify(body), fault.status, headers
        if keyed:
            with lock:
                first = state.answers_by_key.get(keyed)
            if first is not None:
                record.status = first[1] if first[0] == record.json else 422
                if first[0] != record.json:
                    message = "Idempotency-Key was already used with different parameters"
                    return jsonify({"code": "invalid_params", "message": message}), 422
                return jsonify(first[2]), first[1]
        record.status = 200
        return None

    def entity(kind: str, ident: str, data: dict, **extra) -> dict:
        return {"__typename": kind, "id": ident, "updated_at": _now(), **extra, **data}

    @app.put("/v1/users/<user_id>")
    def users_update(user_id):
        body = request.get_json() or {}
        with lock:
            user = state.users.setdefault(user_id, {})
            user.update(body)
            return jsonify(entity("User", user_id, user))

    @app.delete("/v1/users/<user_id>")
    def users_delete(user_id):
        with lock:
            state.users.pop(user_id, None)
        return "", 204

    @app.put("/v1/objects/<collection>/<object_id>")
    def objects_set(collection, object_id):
        body = request.get_json() or {}
        with lock:
            obj = state.objects.setdefault((collection, object_id), {})
            obj.update(body)
            return jsonify(entity("Object", object_id, obj, collection=collection))

    @app.delete("/v1/objects/<collection>/<object_id>")
    def objects_delete(collection, object_id):
        with lock:
            state.objects.pop((collection, object_id), None)
        return "", 204

    @app.route("/v1/objects/<collection>/<object_id>/subscriptions", methods=["POST", "DELETE"])
    def subscriptions(collection, object_id):
        recipients = (request.get_json() or {}).get("recipients", [])
        out = []
        with lock:
            for r in recipients:
                key = (collection, object_id, _recipient(r))
                if request.method == "POST":
                    state.subscriptions.add(key)
                else:
                    state.subscriptions.discard(key)
                out.append(
                    {
                        "__typename": "Subscription",
                        "object": {"id": object_id, "collection": collection},
                        "recipient": {"id": _recipient(r)},
                        "inserted_at": _now(),
                        "updated_at": _now(),
                    }
                )
        return jsonify(out)

    @app.put("/v1/tenants/<tenant_id>")
    def tenants_set(tenant_id):
        body = request.get_json() or {}
        with lock:
            tenant = state.tenants.setdefault(tenant_id, {})
            tenant.update(body)
            return jsonify(entity("Tenant", tenant_id, tenant))

    @app.delete("/v1/tenants/<tenant_id>")
    def tenants_delete(tenant_id):
        with lock:
            state.tenants.pop(tenant_id, None)
        return "", 204

    @app.route("/v1/audiences/<key>/members", methods=["POST", "DELETE"])
    def audience_members(key):
        members = (request.get_json() or {}).get("members", [])
        with lock:
            for m in members:
                item = (key, m["user"]["id"], m.get("tenant") or "")
                if request.method == "POST":
                    state.audience_members.add(item)
                else:
                    state.audience_members.discard(item)
        return "", 204

    @app.post("/v1/workflows/<key>/trigger")
    def workflows_trigger(key):
        body = request.get_json() or {}
        idem = request.headers.get("Idempotency-Key")
        with lock:
            if idem and idem in state.answers_by_key:  # a concurrent request with the key ran it
                return jsonify(state.answers_by_key[idem][2]), state.answers_by_key[idem][1]
            run_id = str(uuid.uuid4())
            if idem:
                state.answers_by_key[idem] = (request.get_json(silent=True), 200, {"workflow_run_id": run_id})
            for r in body.get("recipients", []):
                state.runs.append(
                    {
                        "workflow_run_id": run_id,
                        "workflow": key,
                        "recipient": _recipient(r),
                        "actor": body.get("actor"),
                        "data": body.get("data"),
                        "tenant": body.get("tenant"),
                        "cancellation_key": body.get("cancellation_key"),
                        "idempotency_key": idem,
                        "status": "triggered",
                    }
                )
        return jsonify({"workflow_run_id": run_id})

    @app.post("/v1/workflows/<key>/cancel")
    def workflows_cancel(key):
        body = request.get_json() or {}
        recipients = {_recipient(r) for r in body.get("recipients") or []}
        with lock:
            for run in state.runs:
                if (
                    run["workflow"] == key
                    and run["cancellation_key"] == body.get("cancellation_key")
                    and (not recipients or run["recipient"] in recipients)
                ):
                    run["status"] = "cancelled"
        return "", 204

    return app, state, lock


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # the recorded requests say enough
        pass


class FakeKnock:
    """The fake served on a loopback thread; `url` is its base URL, `stop()` ends it."""

    def __init__(self, api_key: str = API_KEY):
        self.api_key = api_key
        self.app, self.state, self._lock = create_fake_knock(api_key)
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

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.state.requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    def runs(self, workflow: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self.state.runs if workflow is None or r["workflow"] == workflow]


@pytest.fixture
def fake_knock():
    """A fake Knock API on a loopback port for one test."""
    fake = FakeKnock()
    yield fake
    fake.stop()

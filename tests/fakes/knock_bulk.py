"""Knock's bulk endpoints and bulk operations, for the fake Knock API (`tests/fakes/knock.py`).

A bulk call is answered at once with a `BulkOperation` whose status is `queued`; a worker thread
then takes it to `processing` and, after `seconds` (divided by the fake's speed), applies its
entries and marks it `completed`, listing in `error_items` the entries it did not apply (those
named by `FakeKnock.fail_bulk_items`, and users whose merged properties would pass 256 kB), each
with a `message`. `GET /v1/bulk_operations/{id}` serves the operation as it stands.

Knock's batch limit of one update an entity a second (divided by the speed) is kept at request
time: an entity set or deleted again within that second (or twice in one call) is skipped, and
named in the answer's `x-ratelimited-{param}` header (`users`, `objects`, `tenants`, `user_ids`,
`object_ids`, `tenant_ids`), as Knock does. A call of more than 1,000 entries is refused.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request

MAX_BULK_ENTRIES = 1000
MAX_SUBSCRIPTION_RECIPIENTS = 100


def error(status: int, code: str, message: str):
    """Knock's error shape."""
    return jsonify(
        {"code": code, "message": message, "status": status, "type": "invalid_request_error"}
    ), status


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def recipient_id(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "collection" in value:
        return f"{value['collection']}/{value['id']}"
    return value["id"]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class BulkOperations:
    """Bulk operations, run one after another by a worker thread."""

    def __init__(self, state, lock: threading.Lock, speed: float = 1.0, seconds: float = 0.2):
        self.state, self.lock = state, lock
        self.speed = speed or 1.0
        self.seconds = seconds
        self.operations: dict[str, dict] = {}
        self.failing: dict[str, str] = {}  # entity id -> the error item's message
        self.updated: dict[tuple, float] = {}  # entity -> when a bulk call last changed it
        self.skip_once: Counter[str] = Counter()  # ids skipped the next times bulk calls name them
        self._queue: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._run, name="fake-knock-bulk", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stopping.set()
        self._queue.put(None)
        self._worker.join(10)

    def skipped(self, entities: list[tuple]) -> set[int]:
        """Indexes of the entities Knock's batch limit skips (each counted as updated otherwise)."""
        window = 1.0 / self.speed
        now = time.monotonic()
        out, seen = set(), set()
        with self.lock:
            for i, entity in enumerate(entities):
                if self.skip_once[entity[-1]] > 0:
                    self.skip_once[entity[-1]] -= 1
                    out.add(i)
                    continue
                if entity in seen or now - self.updated.get(entity, -window) < window:
                    out.add(i)
                    continue
                seen.add(entity)
                self.updated[entity] = now
        return out

    def start(self, name: str, entries: list[tuple[str, str | None, Callable[[], str | None]]]) -> dict:
        """Queue an operation over (id, collection, apply) entries; `apply` says why it failed, if it did."""
        now = _now()
        operation = {
            "__typename": "BulkOperation",
            "id": str(uuid.uuid4()),
            "name": name,
            "status": "queued",
            "estimated_total_rows": len(entries),
            "processed_rows": 0,
            "success_count": 0,
            "error_count": 0,
            "error_items": [],
            "inserted_at": now,
            "updated_at": now,
            "started_at": None,
            "completed_at": None,
            "failed_at": None,
        }
        operation["progress_path"] = f"{request.host_url}v1/bulk_operations/{operation['id']}"
        with self.lock:
            self.operations[operation["id"]] = operation
            answer = dict(operation)
        self._queue.put((operation, entries))
        return answer

    def get(self, operation_id: str) -> dict | None:
        with self.lock:
            operation = self.operations.get(operation_id)
            return None if operation is None else {**operation, "error_items": list(operation["error_items"])}

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            operation, entries = item
            with self.lock:
                operation.update(status="processing", started_at=_now(), updated_at=_now())
            if self._stopping.wait(self.seconds / self.speed):
                return
            with self.lock:
                for ident, collection, apply in entries:
                    problem = self.failing.get(ident) or apply()
                    if problem:
                        operation["error_items"].append(
                            {"id": ident, "collection": collection, "message": problem}
                        )
                        operation["error_count"] += 1
                    else:
                        operation["success_count"] += 1
                    operation["processed_rows"] += 1
                operation.update(status="completed", completed_at=_now(), updated_at=_now())


def register_bulk_endpoints(
    app: Flask, bulk: BulkOperations, identify: Callable[[str, dict], str | None]
) -> None:
    """The bulk endpoints of users, objects and tenants, and `GET /v1/bulk_operations/{id}`."""
    state = bulk.state

    def answer(name: str, param: str, keys: list[tuple], entries: list[tuple]):
        if len(entries) > MAX_BULK_ENTRIES:
            message = f"{len(entries)} entries; a bulk call takes at most {MAX_BULK_ENTRIES}"
            return error(422, "invalid_params", message)
        skipped = bulk.skipped(keys)
        kept = [e for i, e in enumerate(entries) if i not in skipped]
        headers = {}
        if skipped:
            headers[f"x-ratelimited-{param}"] = ",".join(entries[i][0] for i in sorted(skipped))
        return jsonify(bulk.start(name, kept)), 200, headers

    def data_of(entry: dict) -> dict:
        return {k: v for k, v in entry.items() if k != "id"}

    def users_identify():
        users = request.get_json()["users"]
        entries = [(u["id"], None, lambda u=u: identify(u["id"], data_of(u))) for u in users]
        return answer("users.identify", "users", [("users", u["id"]) for u in users], entries)

    def users_delete():
        ids = request.get_json()["user_ids"]
        entries = [(i, None, lambda i=i: state.users.pop(i, None) and None) for i in ids]
        return answer("users.delete", "user_ids", [("users", i) for i in ids], entries)

    def objects_set(collection):
        objects = request.get_json()["objects"]

        def apply(o):
            state.objects.setdefault((collection, o["id"]), {}).update(data_of(o))

        entries = [(o["id"], collection, lambda o=o: apply(o)) for o in objects]
        return answer("objects.set", "objects", [("objects", collection, o["id"]) for o in objects], entries)

    def objects_delete(collection):
        ids = request.get_json()["object_ids"]
        entries = [
            (i, collection, lambda i=i: state.objects.pop((collection, i), None) and None) for i in ids
        ]
        return answer("objects.delete", "object_ids", [("objects", collection, i) for i in ids], entries)

    def subscriptions(collection, change):
        items = request.get_json()["subscriptions"]
        over = [s["id"] for s in items if len(s["recipients"]) > MAX_SUBSCRIPTION_RECIPIENTS]
        if over:
            message = (
                f"subscriptions of {over[0]}: an entry takes at most {MAX_SUBSCRIPTION_RECIPIENTS} recipients"
            )
            return error(422, "invalid_params", message)

        def apply(item):
            for recipient in item["recipients"]:
                key = (collection, item["id"], recipient_id(recipient))
                if change == "add":
                    state.subscriptions.add(key)
                else:
                    state.subscriptions.discard(key)

        entries = [(s["id"], collection, lambda s=s: apply(s)) for s in items]
        name = f"objects.{change}_subscriptions"
        return answer(name, "subscriptions", [("subscription", i) for i in range(len(items))], entries)

    def tenants_set():
        tenants = [{"id": t} if isinstance(t, str) else t for t in request.get_json()["tenants"]]

        def apply(t):
            state.tenants.setdefault(t["id"], {}).update(data_of(t))

        entries = [(t["id"], None, lambda t=t: apply(t)) for t in tenants]
        return answer("tenants.set", "tenants", [("tenants", t["id"]) for t in tenants], entries)

    def tenants_delete():
        ids = request.args.getlist("tenant_ids[]") or request.args.getlist("tenant_ids")
        entries = [(i, None, lambda i=i: state.tenants.pop(i, None) and None) for i in ids]
        return answer("tenants.delete", "tenant_ids", [("tenants", i) for i in ids], entries)

    def get_operation(operation_id):
        operation = bulk.get(operation_id)
        if operation is None:
            message = f"bulk operation {operation_id} was not found"
            return error(404, "resource_missing", message)
        return jsonify(operation)

    post = {"methods": ["POST"]}
    app.add_url_rule("/v1/users/bulk/identify", "users_bulk_identify", users_identify, **post)
    app.add_url_rule("/v1/users/bulk/delete", "users_bulk_delete", users_delete, **post)
    app.add_url_rule("/v1/objects/<collection>/bulk/set", "objects_bulk_set", objects_set, **post)
    app.add_url_rule("/v1/objects/<collection>/bulk/delete", "objects_bulk_delete", objects_delete, **post)
    app.add_url_rule(
        "/v1/objects/<collection>/bulk/subscriptions/<any(add, delete):change>",
        "objects_bulk_subscriptions",
        subscriptions,
        **post,
    )
    app.add_url_rule("/v1/tenants/bulk/set", "tenants_bulk_set", tenants_set, **post)
    app.add_url_rule("/v1/tenants/bulk/delete", "tenants_bulk_delete", tenants_delete, **post)
    app.add_url_rule("/v1/bulk_operations/<operation_id>", "bulk_operation", get_operation, methods=["GET"])

"""Knock's bulk identify and bulk object set endpoints for the fake Knock API (`tests/fakes/knock.py`).

`add_bulk_endpoints(fake)` adds `POST /v1/users/bulk/identify` and
`POST /v1/objects/<collection>/bulk/set` to a running fake before its first request: users and
objects are merged as the one-at-a-time endpoints merge them, and the answer is a completed bulk
operation. Faults scripted with `fake.fail(path="/v1/users/bulk")` (or the objects' path) apply.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import jsonify, request


def add_bulk_endpoints(fake) -> None:
    state, lock = fake.state, fake._lock

    def bulk_identify():
        users = (request.get_json() or {}).get("users") or []
        with lock:
            for user in users:
                data = {k: v for k, v in user.items() if k != "id"}
                state.users.setdefault(user["id"], {}).update(data)
        return operation("users.identify", len(users))

    def bulk_set_objects(collection):
        objects = (request.get_json() or {}).get("objects") or []
        with lock:
            for obj in objects:
                data = {k: v for k, v in obj.items() if k != "id"}
                state.objects.setdefault((collection, obj["id"]), {}).update(data)
        return operation("objects.set", len(objects))

    def operation(name: str, count: int):
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return jsonify(
            {
                "__typename": "BulkOperation",
                "id": str(uuid.uuid4()),
                "name": name,
                "status": "completed",
                "estimated_total_rows": count,
                "processed_rows": count,
                "success_count": count,
                "error_count": 0,
                "error_items": [],
                "inserted_at": now,
                "updated_at": now,
                "completed_at": now,
            }
        )

    fake.app.add_url_rule("/v1/users/bulk/identify", "users_bulk_identify", bulk_identify, methods=["POST"])
    fake.app.add_url_rule(
        "/v1/objects/<collection>/bulk/set", "objects_bulk_set", bulk_set_objects, methods=["POST"]
    )

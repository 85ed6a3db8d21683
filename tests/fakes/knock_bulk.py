"""Knock's bulk identify endpoint for the fake Knock API (`tests/fakes/knock.py`).

`add_bulk_endpoints(fake)` adds `POST /v1/users/bulk/identify` to a running fake before its
first request: users are merged as the single-user endpoint merges them, and the answer is a
completed bulk operation. Faults scripted with `fake.fail(path="/v1/users/bulk")` apply as usual.
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
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        count = len(users)
        return jsonify(
            {
                "__typename": "BulkOperation",
                "id": str(uuid.uuid4()),
                "name": "users.identify",
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

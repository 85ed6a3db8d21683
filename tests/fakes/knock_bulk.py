"""Knock's bulk endpoints for users, objects and tenants, for the fake Knock API (`tests/fakes/knock.py`).

`add_bulk_endpoints(fake)` adds, to a running fake before its first request:
`POST /v1/users/bulk/identify` and `/v1/users/bulk/delete` (`user_ids` in the body),
`POST /v1/objects/<collection>/bulk/set` and `/bulk/delete` (`object_ids` in the body),
`POST /v1/objects/<collection>/bulk/subscriptions/add` and `/delete`,
`POST /v1/tenants/bulk/set` and `/v1/tenants/bulk/delete` (`tenant_ids` in the query string, as
the SDK sends them). Entities are merged (or removed) as the one-at-a-time endpoints do it, and
the answer is a completed bulk operation. Faults scripted with `fake.fail(path="/v1/users/bulk")`
(or another bulk path) apply.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import jsonify, request

from .knock import _recipient


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

    def bulk_delete_users():
        ids = (request.get_json() or {}).get("user_ids") or []
        with lock:
            for user_id in ids:
                state.users.pop(user_id, None)
        return operation("users.delete", len(ids))

    def bulk_delete_objects(collection):
        ids = (request.get_json() or {}).get("object_ids") or []
        with lock:
            for object_id in ids:
                state.objects.pop((collection, object_id), None)
        return operation("objects.delete", len(ids))

    def bulk_subscriptions(collection, change):
        subscriptions = (request.get_json() or {}).get("subscriptions") or []
        with lock:
            for subscription in subscriptions:
                for recipient in subscription["recipients"]:
                    key = (collection, subscription["id"], _recipient(recipient))
                    if change == "add":
                        state.subscriptions.add(key)
                    else:
                        state.subscriptions.discard(key)
        return operation(f"objects.{change}_subscriptions", len(subscriptions))

    def bulk_set_tenants():
        tenants = (request.get_json() or {}).get("tenants") or []
        with lock:
            for tenant in tenants:
                tenant = {"id": tenant} if isinstance(tenant, str) else tenant
                data = {k: v for k, v in tenant.items() if k != "id"}
                state.tenants.setdefault(tenant["id"], {}).update(data)
        return operation("tenants.set", len(tenants))

    def bulk_delete_tenants():
        ids = request.args.getlist("tenant_ids[]") or request.args.getlist("tenant_ids")
        with lock:
            for tenant_id in ids:
                state.tenants.pop(tenant_id, None)
        return operation("tenants.delete", len(ids))

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
    fake.app.add_url_rule("/v1/users/bulk/delete", "users_bulk_delete", bulk_delete_users, methods=["POST"])
    fake.app.add_url_rule(
        "/v1/objects/<collection>/bulk/set", "objects_bulk_set", bulk_set_objects, methods=["POST"]
    )
    fake.app.add_url_rule(
        "/v1/objects/<collection>/bulk/delete", "objects_bulk_delete", bulk_delete_objects, methods=["POST"]
    )
    fake.app.add_url_rule(
        "/v1/objects/<collection>/bulk/subscriptions/<any(add, delete):change>",
        "objects_bulk_subscriptions",
        bulk_subscriptions,
        methods=["POST"],
    )
    fake.app.add_url_rule("/v1/tenants/bulk/set", "tenants_bulk_set", bulk_set_tenants, methods=["POST"])
    fake.app.add_url_rule(
        "/v1/tenants/bulk/delete", "tenants_bulk_delete", bulk_delete_tenants, methods=["POST"]
    )

"""`store/fast.py` against its plain twin: the driver path leaves what SQLAlchemy Core leaves."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from workbench.engine import ActionRequest, ActionResult, Outcome, SourceEvent
from workbench.errors import TransientSinkError
from workbench.sinks.batched import BatchedUsers
from workbench.sinks.local import LocalSink
from workbench.store import Store, actions, events, fast, local_objects, local_tenants, local_users
from workbench.store.applied import remember, remember_rows
from workbench.store.schema import applied_payloads, applied_rows

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _writes(store: Store) -> None:
    """The local sink's merges, a batch of new users, a live event and a logged batch."""
    sink = LocalSink(store, clock=lambda: T0)
    for action, payload in [
        ("users_identify", {"id": "u1", "name": "Zoë", "properties": {"plan": {"tier": "pro", "seats": 3}}}),
        ("users_identify", {"id": "u1", "email": "zoe@example.com", "properties": {"plan": {"seats": None}}}),
        ("objects_set", {"collection": "accounts", "id": "acme", "name": "Acme", "properties": {"n": 1.5}}),
        ("tenants_set", {"id": "t1", "name": "Tenant ✓"}),
    ]:
        sink.apply(ActionRequest(action, payload, "evt_live", f"0:{action}"))
    with store.transaction() as conn:
        users = BatchedUsers(sink.bind(conn), conn)
        for n in range(3):
            payload = {"id": f"b{n}", "name": f"Batch {n}", "properties": {"row": n, "tags": ["x", None]}}
            users.apply(ActionRequest("users_identify", payload, f"evt_b{n}", "0:users_identify"))
        users.flush()
        done = []
        for n in range(3):
            event = SourceEvent({"event": "lead.enriched", "n": n}, origin="backfill", id=f"evt_b{n}")
            event.received_at = T0
            result = ActionResult("users_identify", "success", "0:users_identify", payload={"id": f"b{n}"})
            done.append((event, "clay", "development", Outcome("processed", "lead.enriched", [result])))
        store.record_processed(conn, done, T0)
    event = SourceEvent(b'{"event": "lead.enriched", "email": "a@b.c"}', {"X-Trace": "1"}, id="evt_live")
    event.received_at = T0
    store.record_received(event, "clay", "development")
    queued = ActionResult("workflows_trigger", "queued", "1:workflows_trigger", payload={"key": "w"})
    queued.error, queued.retry_after = str(TransientSinkError("busy")), 30
    outcome = Outcome(
        "queued", "lead.enriched", [ActionResult("users_identify", "success", "0:users_identify"), queued]
    )
    store.record_outcome("evt_live", outcome, now=T0 + timedelta(seconds=1))
    # The sync's memory: applied payloads and rows, the second write of each target an update.
    scope = ("clay", "development")
    with store.transaction() as conn:
        remember(conn, scope, [("user:u1", "h1", "evt_b0", "fp0"), ("user:u2", "h2", "evt_b1")], T0)
        remember(conn, scope, [("user:u1", "h3", "evt_live")], T0 + timedelta(seconds=2))
        remember_rows(conn, scope, "digest", [("fp0", "done"), ("fp1", "skipped")])
        remember_rows(conn, scope, "digest", [("fp1", "done")])


def _contents(store: Store) -> dict:
    with store.engine.connect() as conn:
        return {
            table.name: sorted(
                (
                    tuple(sorted(row._mapping.items(), key=lambda kv: kv[0]))
                    for row in conn.execute(select(table))
                ),
                key=repr,
            )
            for table in (
                local_users,
                local_objects,
                local_tenants,
                events,
                actions,
                applied_payloads,
                applied_rows,
            )
        }


def test_the_driver_path_writes_and_reads_what_core_does(tmp_path):
    found = {}
    for path in ("driver", "core"):
        store = Store(f"sqlite:///{tmp_path / path}.sqlite")
        try:
            with fast.plain() if path == "core" else nullcontext():
                _writes(store)
            found[path] = _contents(store)
        finally:
            store.close()
    assert found["driver"] == found["core"]
    users = {dict(row)["id"]: dict(row) for row in found["driver"]["local_users"]}
    assert users["u1"]["data"] == {
        "name": "Zoë",
        "email": "zoe@example.com",
        "plan": {"tier": "pro", "seats": None},
    }
    assert len(found["driver"]["events"]) == 4 and len(found["driver"]["actions"]) == 5
    applied = {dict(row)["target"]: dict(row) for row in found["driver"]["applied_payloads"]}
    assert applied["user:u1"]["payload_hash"] == "h3" and applied["user:u1"]["row_fingerprint"] is None
    assert applied["user:u2"]["payload_hash"] == "h2"
    assert sorted((dict(r)["fingerprint"], dict(r)["status"]) for r in found["driver"]["applied_rows"]) == [
        ("fp0", "done"),
        ("fp1", "done"),
    ]

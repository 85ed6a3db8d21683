"""The local sink: Knock's merge semantics and every action type, in the store's database."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from workbench.actions import EXECUTION_ORDER
from workbench.engine import ActionRequest
from workbench.errors import TerminalSinkError
from workbench.sinks.local import LocalSink, deep_merge
from workbench.store import (
    local_audience_members,
    local_objects,
    local_subscriptions,
    local_tenants,
    local_users,
    local_workflow_runs,
)


@pytest.fixture
def sink(store):
    return LocalSink(store)


def apply(sink, action, payload, event_id="evt_1", mapping=None):
    return sink.apply(ActionRequest(action, payload, event_id, mapping or f"0:{action}"))


def rows(store, table, *order):
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(*order))]


def user(store, user_id):
    found = [r["data"] for r in rows(store, local_users) if r["id"] == user_id]
    return found[0] if found else None


@pytest.mark.parametrize(
    "base, changes, merged",
    [
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3, "z": 4}}, {"a": {"x": 1, "y": 3, "z": 4}}),
        ({"a": {"x": 1}}, {"a": None}, {"a": None}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        ({"a": 1}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"d": None}}}, {"a": {"b": {"c": 1, "d": None}}}),
    ],
)
def test_deep_merge(base, changes, merged):
    assert deep_merge(base, changes) == merged


def test_identify_merges_properties_and_a_null_sets_null(store, sink):
    first = apply(
        sink,
        "users_identify",
        {
            "id": "jane@acme.com",
            "name": "Jane",
            "email": "jane@acme.com",
            "properties": {"plan": "pro", "company": {"name": "Acme", "size": 50}, "name": "ignored"},
        },
    )
    assert first == {"id": "jane@acme.com"}  # the same answer whether the user was new or not
    again = apply(
        sink,
        "users_identify",
        {"id": "jane@acme.com", "properties": {"plan": None, "company": {"size": 60}, "tags": ["a"]}},
    )
    assert again == first
    assert user(store, "jane@acme.com") == {
        "name": "Jane",  # the named parameter wins over a property of the same name
        "email": "jane@acme.com",
        "plan": None,
        "company": {"name": "Acme", "size": 60},
        "tags": ["a"],
    }


def test_users_delete(store, sink):
    apply(sink, "users_identify", {"id": "u1", "name": "U"})
    assert apply(sink, "users_delete", {"id": "u1"}) == {"id": "u1", "deleted": True}
    assert user(store, "u1") is None
    assert apply(sink, "users_delete", {"id": "u1"}) == {"id": "u1", "deleted": False}


def test_objects_by_collection_and_id(store, sink):
    apply(
        sink,
        "objects_set",
        {"collection": "accounts", "id": "acme", "name": "Acme", "properties": {"tier": 1}},
    )
    apply(sink, "objects_set", {"collection": "projects", "id": "acme", "properties": {"tier": 9}})
    apply(sink, "objects_set", {"collection": "accounts", "id": "acme", "properties": {"seats": 5}})
    found = {(r["collection"], r["id"]): r["data"] for r in rows(store, local_objects)}
    assert found == {
        ("accounts", "acme"): {"name": "Acme", "tier": 1, "seats": 5},
        ("projects", "acme"): {"tier": 9},
    }
    assert apply(sink, "objects_delete", {"collection": "accounts", "id": "acme"})["deleted"] is True
    assert [(r["collection"], r["id"]) for r in rows(store, local_objects)] == [("projects", "acme")]


def test_tenants(store, sink):
    apply(sink, "tenants_set", {"id": "t1", "name": "Team", "properties": {"region": "eu"}})
    apply(sink, "tenants_set", {"id": "t1", "properties": {"plan": "pro"}})
    assert [r["data"] for r in rows(store, local_tenants)] == [
        {"name": "Team", "region": "eu", "plan": "pro"}
    ]
    apply(sink, "tenants_delete", {"id": "t1"})
    assert rows(store, local_tenants) == []


def test_subscriptions_are_a_set(store, sink):
    obj = {"collection": "accounts", "id": "acme"}
    ref = {"collection": "teams", "id": "sales"}
    assert apply(sink, "objects_subscribe", {**obj, "recipients": ["u1", "u2", ref]})["subscribed"] == 3
    assert apply(sink, "objects_subscribe", {**obj, "recipients": ["u1"]})["subscribed"] == 0
    assert apply(sink, "objects_unsubscribe", {**obj, "recipients": ["u2", ref]})["unsubscribed"] == 2
    assert [r["recipient"] for r in rows(store, local_subscriptions)] == ["u1"]


def test_inline_identified_recipients_are_upserted(store, sink):
    apply(
        sink,
        "objects_subscribe",
        {"collection": "accounts", "id": "acme", "recipients": [{"id": "u9", "email": "u9@acme.com"}]},
    )
    assert user(store, "u9") == {"email": "u9@acme.com"}
    assert [r["recipient"] for r in rows(store, local_subscriptions)] == ["u9"]


def test_audience_members_per_tenant(store, sink):
    apply(sink, "audiences_add_member", {"key": "vip", "users": ["u1", "u2"]})
    apply(sink, "audiences_add_member", {"key": "vip", "users": ["u1"], "tenant": "t1"})
    assert apply(sink, "audiences_add_member", {"key": "vip", "users": ["u1"]})["added"] == 0
    assert apply(sink, "audiences_remove_member", {"key": "vip", "users": ["u1"]})["removed"] == 1
    members = [(r["audience_key"], r["user_id"], r["tenant"]) for r in rows(store, local_audience_members)]
    assert sorted(members) == [("vip", "u1", "t1"), ("vip", "u2", "")]


def test_trigger_runs_once_per_recipient_and_a_retry_runs_nothing_new(store, sink):
    payload = {
        "key": "new-lead",
        "recipients": ["u1", {"collection": "teams", "id": "sales"}],
        "actor": "jane@acme.com",
        "data": {"score": 91},
        "tenant": "t1",
        "cancellation_key": "lead-1",
    }
    first = apply(sink, "workflows_trigger", payload, mapping="2:workflows_trigger")
    retried = apply(sink, "workflows_trigger", payload, mapping="2:workflows_trigger")
    assert first == retried
    runs = rows(store, local_workflow_runs, local_workflow_runs.c.id)
    assert [r["recipient"] for r in runs] == ["u1", '{"collection":"teams","id":"sales"}']
    assert {r["trigger_id"] for r in runs} == {first["workflow_run_id"]}
    run = runs[0]
    assert (run["workflow"], run["actor"], run["data"], run["tenant"], run["cancellation_key"]) == (
        "new-lead",
        "jane@acme.com",
        {"score": 91},
        "t1",
        "lead-1",
    )
    assert (run["status"], run["event_id"], run["idempotency_key"]) == (
        "triggered",
        "evt_1",
        "evt_1:2:workflows_trigger",
    )
    other_event = apply(sink, "workflows_trigger", payload, event_id="evt_2")
    assert other_event != first
    assert len(rows(store, local_workflow_runs)) == 4


def test_cancel_matching_runs_for_some_or_all_recipients(store, sink):
    for event_id, key in (("evt_1", "lead-1"), ("evt_2", "lead-2")):
        apply(
            sink,
            "workflows_trigger",
            {"key": "nurture", "recipients": ["u1", "u2"], "cancellation_key": key},
            event_id=event_id,
        )
    result = apply(
        sink, "workflows_cancel", {"key": "nurture", "cancellation_key": "lead-1", "recipients": ["u2"]}
    )
    assert result["cancelled"] == 1
    assert apply(sink, "workflows_cancel", {"key": "nurture", "cancellation_key": "lead-1"})["cancelled"] == 1
    assert apply(sink, "workflows_cancel", {"key": "other", "cancellation_key": "lead-2"})["cancelled"] == 0
    statuses = {
        (r["cancellation_key"], r["recipient"]): r["status"] for r in rows(store, local_workflow_runs)
    }
    assert statuses == {
        ("lead-1", "u1"): "cancelled",
        ("lead-1", "u2"): "cancelled",
        ("lead-2", "u1"): "triggered",
        ("lead-2", "u2"): "triggered",
    }


def test_bound_sink_writes_commit_or_roll_back_with_the_transaction(store, sink):
    with store.engine.connect() as conn:
        apply(sink.bind(conn), "users_identify", {"id": "u1"})
        conn.rollback()
    assert user(store, "u1") is None
    with store.unit_of_work() as conn:
        apply(sink.bind(conn), "users_identify", {"id": "u1"})
    assert user(store, "u1") == {}


def test_every_action_type_is_supported(sink):
    assert all(callable(getattr(sink, f"_{action}", None)) for action in EXECUTION_ORDER)
    with pytest.raises(TerminalSinkError, match="does not support `users_merge`"):
        apply(sink, "users_merge", {"id": "u1"})

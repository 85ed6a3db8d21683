"""The knock sink through the real `knockapi` SDK against the fake Knock API."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.fakes.knock import API_KEY, SINK_RATE_SCALE
from workbench.config import EnvRef, SinkConfig
from workbench.engine import ActionRequest
from workbench.errors import ConfigError, TerminalSinkError, TransientSinkError
from workbench.sinks import DryRunSink, make_sink
from workbench.sinks.knock import KnockSink, retry_after
from workbench.sinks.local import LocalSink


@pytest.fixture
def sink(fake_knock):
    return KnockSink(API_KEY, base_url=fake_knock.url, timeout=2, rate_limit_scale=SINK_RATE_SCALE)


def apply(sink, action, payload, event_id="evt_1", mapping=None):
    return sink.apply(ActionRequest(action, payload, event_id, mapping or f"0:{action}"))


def last(fake):
    return fake.state.requests[-1]


CASES = [
    (
        "users_identify",
        {
            "id": "jane@acme.com",
            "name": "Jane",
            "email": "jane@acme.com",
            "properties": {"plan": "pro", "name": "x"},
        },
        "PUT",
        "/v1/users/jane@acme.com",
        {"name": "Jane", "email": "jane@acme.com", "plan": "pro"},
    ),
    ("users_delete", {"id": "u1"}, "DELETE", "/v1/users/u1", None),
    (
        "objects_set",
        {"collection": "accounts", "id": "acme", "name": "Acme", "properties": {"tier": 1}},
        "PUT",
        "/v1/objects/accounts/acme",
        {"name": "Acme", "tier": 1},
    ),
    ("objects_delete", {"collection": "accounts", "id": "acme"}, "DELETE", "/v1/objects/accounts/acme", None),
    (
        "tenants_set",
        {"id": "t1", "name": "Team", "properties": {"region": "eu"}},
        "PUT",
        "/v1/tenants/t1",
        {"name": "Team", "region": "eu"},
    ),
    ("tenants_delete", {"id": "t1"}, "DELETE", "/v1/tenants/t1", None),
    (
        "objects_subscribe",
        {
            "collection": "accounts",
            "id": "acme",
            "recipients": ["u1", {"collection": "teams", "id": "sales"}],
        },
        "POST",
        "/v1/objects/accounts/acme/subscriptions",
        {"recipients": ["u1", {"collection": "teams", "id": "sales"}]},
    ),
    (
        "objects_unsubscribe",
        {"collection": "accounts", "id": "acme", "recipients": ["u1"]},
        "DELETE",
        "/v1/objects/accounts/acme/subscriptions",
        {"recipients": ["u1"]},
    ),
    (
        "audiences_add_member",
        {"key": "vip", "users": ["u1"], "tenant": "t1"},
        "POST",
        "/v1/audiences/vip/members",
        {"members": [{"user": {"id": "u1"}, "tenant": "t1"}]},
    ),
    (
        "audiences_remove_member",
        {"key": "vip", "users": ["u1"]},
        "DELETE",
        "/v1/audiences/vip/members",
        {"members": [{"user": {"id": "u1"}}]},
    ),
    (
        "workflows_trigger",
        {
            "key": "new-lead",
            "recipients": ["u1"],
            "actor": "jane@acme.com",
            "data": {"score": 91},
            "tenant": "t1",
            "cancellation_key": "lead-1",
        },
        "POST",
        "/v1/workflows/new-lead/trigger",
        {
            "recipients": ["u1"],
            "actor": "jane@acme.com",
            "data": {"score": 91},
            "tenant": "t1",
            "cancellation_key": "lead-1",
        },
    ),
    (
        "workflows_cancel",
        {"key": "new-lead", "cancellation_key": "lead-1", "recipients": ["u1"]},
        "POST",
        "/v1/workflows/new-lead/cancel",
        {"cancellation_key": "lead-1", "recipients": ["u1"]},
    ),
]


@pytest.mark.parametrize("action, payload, method, path, body", CASES, ids=[c[0] for c in CASES])
def test_each_action_reaches_knock_through_the_sdk(fake_knock, sink, action, payload, method, path, body):
    fake_knock.state.users["jane@acme.com"] = {}  # the trigger's actor
    fake_knock.state.audiences.add("vip")
    result = apply(sink, action, payload, mapping=f"3:{action}")
    request = last(fake_knock)
    assert (request.method, request.path, request.status // 100) == (method, path, 2)
    if body is not None:
        assert request.json == body
    # Knock deduplicates triggers only; other calls carry whatever key the SDK makes up.
    if action == "workflows_trigger":
        assert request.idempotency_key == f"evt_1:3:{action}"
    else:
        assert "evt_1" not in (request.idempotency_key or "")
    assert isinstance(result, dict)


def test_trigger_result_and_state(fake_knock, sink):
    payload = {"key": "new-lead", "recipients": ["u1", "u2"], "data": {"x": 1}}
    result = apply(sink, "workflows_trigger", payload)
    assert result == {"workflow_run_id": fake_knock.runs()[0]["workflow_run_id"]}
    assert [r["recipient"] for r in fake_knock.runs()] == ["u1", "u2"]
    assert apply(sink, "workflows_trigger", payload) == result  # same key: Knock answers with the first run
    assert len(fake_knock.runs()) == 2


def test_a_key_is_answered_as_first_answered_and_refused_with_other_parameters(fake_knock, sink):
    """The fake keeps Knock's documented rules for a trigger's Idempotency-Key, which the
    receiver's choice of keys relies on: only a 2xx answer is kept for the key."""
    payload = {"key": "new-lead", "recipients": ["u1"]}
    first = apply(sink, "workflows_trigger", payload)
    with pytest.raises(TerminalSinkError, match="422.*different parameters"):
        apply(sink, "workflows_trigger", {**payload, "recipients": ["u2"]})
    assert apply(sink, "workflows_trigger", payload) == first
    fake_knock.fail(422, path="/v1/workflows", body={"message": "workflow not committed"})
    with pytest.raises(TerminalSinkError, match="not committed"):
        apply(sink, "workflows_trigger", payload, event_id="evt_2")
    # A refusal is not kept: the same key runs the trigger once Knock takes it.
    refused_then_run = apply(sink, "workflows_trigger", payload, event_id="evt_2")
    assert refused_then_run != first
    assert apply(sink, "workflows_trigger", payload, event_id="evt_2") == refused_then_run
    fake_knock.fail(503, path="/v1/workflows")
    with pytest.raises(TransientSinkError):
        apply(sink, "workflows_trigger", payload, event_id="evt_3")
    assert apply(sink, "workflows_trigger", payload, event_id="evt_3") != first  # an outage is not kept
    assert len(fake_knock.runs()) == 3


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_retryable_statuses_are_transient(fake_knock, sink, status):
    fake_knock.fail(status)
    with pytest.raises(TransientSinkError, match=f"Knock answered {status} to users_delete"):
        apply(sink, "users_delete", {"id": "u1"})
    assert len(fake_knock.requests_to("/v1/users")) == 1  # the SDK itself did not retry


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_other_client_errors_are_terminal(fake_knock, sink, status):
    fake_knock.fail(status, body={"message": "user id is not valid", "code": "invalid_params"})
    with pytest.raises(
        TerminalSinkError, match=f"Knock answered {status} to users_identify: user id is not valid"
    ):
        apply(sink, "users_identify", {"id": "u1"})


def test_retry_after_is_passed_on(fake_knock, sink):
    fake_knock.fail(429, retry_after=120)
    with pytest.raises(TransientSinkError) as caught:
        apply(sink, "users_delete", {"id": "u1"})
    assert caught.value.retry_after == 120


def test_retry_after_as_http_date():
    later = datetime.now(UTC) + timedelta(seconds=300)
    seconds = retry_after({"retry-after": format_datetime(later, usegmt=True)})
    assert 290 <= seconds <= 301
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_slow_knock_times_out_as_transient(fake_knock):
    sink = KnockSink(API_KEY, base_url=fake_knock.url, timeout=0.5)
    fake_knock.fail(None, delay=1.5)
    with pytest.raises(TransientSinkError, match="did not answer users_delete in time"):
        apply(sink, "users_delete", {"id": "u1"})


def test_unreachable_knock_is_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = KnockSink(API_KEY, base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(TransientSinkError, match="cannot reach Knock for users_delete"):
        apply(sink, "users_delete", {"id": "u1"})


def test_wrong_api_key_is_terminal(fake_knock):
    sink = KnockSink("sk_wrong", base_url=fake_knock.url)
    with pytest.raises(TerminalSinkError, match="Knock answered 401") as caught:
        apply(sink, "users_delete", {"id": "u1"})
    assert "check that KNOCK_API_KEY holds the secret API key (sk_…)" in str(caught.value)


def test_make_sink_by_type(fake_knock, tmp_path):
    from workbench.store import Store

    store = Store(f"sqlite:///{tmp_path / 'w.sqlite'}")
    try:
        assert isinstance(make_sink(SinkConfig("dry-run")), DryRunSink)
        assert isinstance(make_sink(SinkConfig("local"), store), LocalSink)
        with pytest.raises(ConfigError, match="needs a store"):
            make_sink(SinkConfig("local"), None)
        knock = make_sink(
            SinkConfig("knock", EnvRef("MY_KNOCK_KEY"), fake_knock.url, {"timeout": 3, "max_retries": 0}),
            store,
            {"MY_KNOCK_KEY": API_KEY},
        )
        assert apply(knock, "users_delete", {"id": "u1"}) == {"id": "u1", "deleted": True}
        unset = make_sink(SinkConfig("knock", EnvRef("MY_KNOCK_KEY"), fake_knock.url), store, {})
        with pytest.raises(TerminalSinkError, match="set MY_KNOCK_KEY on the receiver"):
            apply(unset, "users_delete", {"id": "u1"})
    finally:
        store.close()


def test_a_subscription_over_a_hundred_recipients_goes_in_calls_of_a_hundred(fake_knock, sink):
    recipients = [f"u{i}" for i in range(250)]
    result = apply(
        sink, "objects_subscribe", {"collection": "accounts", "id": "acme", "recipients": recipients}
    )
    calls = fake_knock.requests_to("/v1/objects/accounts/acme/subscriptions", "POST")
    assert [len(c.json["recipients"]) for c in calls] == [100, 100, 50]
    assert len(fake_knock.state.subscriptions) == 250 and result["subscribed"] == 250


def test_a_trigger_takes_a_tenant_object(fake_knock, sink):
    tenant = {"id": "acme", "name": "Acme"}
    apply(sink, "workflows_trigger", {"key": "new-lead", "recipients": ["u1"], "tenant": tenant})
    assert last(fake_knock).json["tenant"] == tenant
    assert fake_knock.state.tenants["acme"] == {"name": "Acme"} and fake_knock.runs()[0]["tenant"] == "acme"


def test_an_audience_is_created_only_when_asked(fake_knock, sink):
    payload = {"key": "vip", "users": ["u1"]}
    with pytest.raises(TerminalSinkError, match="404.*audience `vip` does not exist"):
        apply(sink, "audiences_add_member", payload)
    assert apply(sink, "audiences_add_member", {**payload, "create_audience": True}) == {
        "key": "vip",
        "added": 1,
    }
    assert last(fake_knock).query == {"create_audience": ["true"]}
    assert ("vip", "u1", "") in fake_knock.state.audience_members


def test_properties_named_like_knocks_own_fields_go_as_custom_names(fake_knock, sink):
    row = {
        "created_at": "3 days ago",
        "preferences": "weekly",
        "channel_data": "n/a",
        "id": "r-1",
        "plan": "pro",
    }
    apply(sink, "users_identify", {"id": "u1", "name": "Jane", "properties": row})
    assert last(fake_knock).json == {
        "name": "Jane",
        "custom_created_at": "3 days ago",
        "custom_preferences": "weekly",
        "custom_channel_data": "n/a",
        "custom_id": "r-1",
        "plan": "pro",
    }


@pytest.mark.parametrize("ident", [".", "..", "..."])
def test_ids_that_cannot_be_part_of_a_url_fail_the_action_before_anything_is_sent(fake_knock, sink, ident):
    for action, payload in [
        ("users_identify", {"id": ident}),
        ("objects_set", {"collection": ident, "id": "acme"}),
        ("workflows_trigger", {"key": ident, "recipients": ["u1"]}),
    ]:
        with pytest.raises(TerminalSinkError, match="cannot name anything in Knock's API"):
            apply(sink, action, payload)
    assert fake_knock.state.requests == []

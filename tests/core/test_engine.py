import json
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.actions import EXECUTION_ORDER
from workbench.body import parse_body
from workbench.config import load_config, parse_config
from workbench.engine import Engine, SourceEvent, content_hash, new_event_id, new_event_ids
from workbench.errors import ConfigError, InvalidBody, TerminalSinkError, TransientSinkError
from workbench.sinks import DryRunSink

from .conftest import DEFAULT_CONFIG


class RecordingSink:
    """Records what it is asked to apply; fails on demand by action type."""

    def __init__(self, fail=None):
        self.requests = []
        self.fail = fail or {}

    def apply(self, request):
        self.requests.append(request)
        error = self.fail.get(request.action)
        if error is not None:
            raise error
        return {"applied": request.action}


class MemoryIdempotency:
    """The idempotency port in a dict, with the window honoured."""

    def __init__(self):
        self.keys = {}
        self.lock = threading.Lock()

    def reserve(self, scope, key, now, window_seconds):
        with self.lock:
            seen = self.keys.get((scope, key))
            if seen is not None and now - seen < timedelta(seconds=window_seconds):
                return False
            self.keys[(scope, key)] = now
            return True

    def complete(self, scope, key, now):
        self.keys[(scope, key)] = now

    def release(self, scope, key):
        self.keys.pop((scope, key), None)

    def earlier(self, scope, key, now, window_seconds):
        return {}


def event(body, headers=None, origin="live"):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body).encode()
    return SourceEvent(raw, headers or {}, origin=origin)


@pytest.fixture
def default_engine():
    return Engine(load_config(DEFAULT_CONFIG), "development", DryRunSink())


def test_default_lead_enriched_identifies_the_user(default_engine, lead_body):
    outcome = default_engine.process(event(lead_body))
    assert outcome.status == "processed" and outcome.event == "lead.enriched"
    (action,) = outcome.actions
    assert action.action == "users_identify" and action.status == "success"
    assert action.payload == {
        "id": "jane@acme.com",
        "name": "Jane Doe",
        "email": "jane@acme.com",
        "phone_number": "+1 415 555 0100",
        "avatar": "https://cdn.example.com/avatars/jane.png",
        "properties": lead_body,
    }
    assert action.result == {"dry_run": True}
    response = outcome.to_dict("evt_1")
    assert list(response) == ["id", "status", "event", "actions"]
    assert response["actions"][0]["result"] == {"dry_run": True}


def test_empty_cells_are_missing_and_optional_params_are_dropped(default_engine):
    outcome = default_engine.process(
        event({"event": "lead.enriched", "email": "a@b.co", "full_name": "", "phone_number": None})
    )
    payload = outcome.actions[0].payload
    assert "name" not in payload and "phone_number" not in payload and payload["id"] == "a@b.co"


@pytest.mark.parametrize("email", [None, "", "missing"])
def test_required_field_missing_fails_naming_param_and_path(default_engine, email):
    body = {"event": "lead.enriched", "full_name": "Jane"}
    if email != "missing":
        body["email"] = email
    outcome = default_engine.process(event(body))
    assert outcome.status == "failed"
    assert outcome.actions[0].status == "failed"
    assert outcome.actions[0].error == "param `id`: path `body.email` resolved to nothing"


def test_unknown_event_is_no_mapping(default_engine):
    outcome = default_engine.process(event({"event": "lead.deleted"}))
    assert outcome.status == "no_mapping" and outcome.actions == []
    assert "lead.deleted" in outcome.error


def test_condition_skips_and_says_why(default_engine):
    low = default_engine.process(event({"event": "lead.high_intent", "email": "a@b.co", "icp_score": "72"}))
    assert low.status == "processed" and low.actions[0].status == "skipped"
    assert "`body.icp_score` is 72, not ≥ 80" in low.actions[0].result["reason"]
    high = default_engine.process(event({"event": "lead.high_intent", "email": "a@b.co", "icp_score": "91"}))
    assert high.actions[0].status == "success"
    assert high.actions[0].payload["recipients"] == ["sales-team"]
    assert high.actions[0].payload["actor"] == "a@b.co"


def test_header_paths(raw_config):
    raw_config["environments"]["development"]["mappings"] = [
        {
            "event": "lead.enriched",
            "action": "users_identify",
            "params": {"id": "body.email", "properties": {"template": "{{headers.x-clay-table-id}}"}},
        },
        {"event": "lead.enriched", "action": "tenants_set", "params": {"id": "headers.X-Clay-Table-Id"}},
    ]
    engine = Engine(parse_config(raw_config), "development", DryRunSink())
    outcome = engine.process(event({"event": "lead.enriched", "email": "a@b.co"}, {"X-Clay-Table-ID": "t_9"}))
    assert outcome.actions[0].status == "failed"  # properties must be an object, the template makes text
    assert outcome.actions[1].payload == {"id": "t_9"}
    assert outcome.status == "failed"


@pytest.mark.parametrize("header", ["authorization", "Cookie", "x-api-key", "X-Auth-Token", "x-my-secret"])
def test_a_mapping_cannot_read_a_credential_header(raw_config, header):
    raw_config["environments"]["development"]["mappings"] = [
        {
            "event": "e",
            "action": "users_identify",
            "params": {"id": "body.email", "name": f"headers.{header}"},
        }
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config(raw_config)
    message = str(caught.value)
    assert "environments.development.mappings[0].params.name" in message
    assert f"`{header.lower()}` is never stored or shown to mappings" in message


def test_credential_headers_are_left_out_of_events():
    headers = {"Authorization": "Bearer s", "Cookie": "c=1", "X-Api-Key": "k", "X-Clay-Table-Id": "t_1"}
    assert SourceEvent(b"{}", headers).headers == {"x-clay-table-id": "t_1"}
    pairs = [(b"Proxy-Authorization", b"Basic x"), (b"Idempotency-Key", b"r1"), (b"X-Session-Id", b"s")]
    assert SourceEvent(b"{}", pairs).headers == {"idempotency-key": "r1"}


ALL_ACTIONS = [
    (
        "workflows_cancel",
        {"key": {"value": "wf"}, "cancellation_key": "body.row_id", "recipients": "body.email"},
    ),
    ("audiences_remove_member", {"key": {"value": "aud"}, "users": "body.email"}),
    (
        "workflows_trigger",
        {
            "key": {"value": "wf"},
            "recipients": "body.email",
            "actor": "body.email",
            "data": "body",
            "tenant": {"value": "acme"},
            "cancellation_key": "body.row_id",
        },
    ),
    ("audiences_add_member", {"key": {"value": "aud"}, "users": "body.email", "tenant": {"value": "acme"}}),
    (
        "objects_unsubscribe",
        {"collection": {"value": "accounts"}, "id": "body.domain", "recipients": "body.email"},
    ),
    (
        "objects_subscribe",
        {"collection": {"value": "accounts"}, "id": "body.domain", "recipients": "body.email"},
    ),
    ("tenants_delete", {"id": {"value": "old-tenant"}}),
    (
        "tenants_set",
        {
            "id": {"value": "acme"},
            "name": {"value": "Acme"},
            "properties": {"path": "body.meta", "as": "json"},
        },
    ),
    ("objects_delete", {"collection": {"value": "accounts"}, "id": {"value": "gone.com"}}),
    (
        "objects_set",
        {
            "collection": {"value": "accounts"},
            "id": "body.domain",
            "name": "body.company",
            "locale": {"value": "en"},
            "timezone": {"value": "UTC"},
            "properties": "body",
        },
    ),
    ("users_delete", {"id": {"value": "old@acme.com"}}),
    (
        "users_identify",
        {
            "id": "body.email",
            "name": "body.name",
            "email": "body.email",
            "phone_number": "body.phone",
            "avatar": "body.avatar",
            "locale": {"value": "en-US"},
            "timezone": {"value": "America/New_York"},
            "properties": "body",
        },
    ),
]


def test_every_action_type_runs_in_knocks_fixed_order(raw_config):
    raw_config["environments"]["development"]["mappings"] = [
        {"event": "all", "action": action, "params": params} for action, params in ALL_ACTIONS
    ]
    sink = RecordingSink()
    engine = Engine(parse_config(raw_config), "development", sink)
    body = {
        "event": "all",
        "email": "jane@acme.com",
        "name": "Jane",
        "phone": "+1",
        "avatar": "https://a/x.png",
        "domain": "acme.com",
        "company": "Acme",
        "row_id": "r1",
        "meta": '{"plan": "pro"}',
    }
    outcome = engine.process(event(body))
    assert outcome.status == "processed"
    assert [a.action for a in outcome.actions] == list(EXECUTION_ORDER)
    assert [r.action for r in sink.requests] == list(EXECUTION_ORDER)
    payloads = {r.action: r.payload for r in sink.requests}
    assert payloads["tenants_set"]["properties"] == {"plan": "pro"}
    assert payloads["workflows_trigger"]["recipients"] == ["jane@acme.com"]
    assert payloads["audiences_add_member"]["users"] == ["jane@acme.com"]
    assert payloads["workflows_cancel"] == {
        "key": "wf",
        "cancellation_key": "r1",
        "recipients": ["jane@acme.com"],
    }
    assert payloads["users_identify"]["timezone"] == "America/New_York"
    assert {r.mapping_key for r in sink.requests} == {f"{i}:{a}" for i, (a, _) in enumerate(ALL_ACTIONS)}


def test_one_failure_does_not_stop_the_others(raw_config):
    raw_config["environments"]["development"]["mappings"] = [
        {"event": "e", "action": "users_identify", "params": {"id": "body.email"}},
        {
            "event": "e",
            "action": "objects_set",
            "params": {"collection": {"value": "c"}, "id": "body.domain"},
        },
        {
            "event": "e",
            "action": "workflows_trigger",
            "params": {"key": {"value": "k"}, "recipients": "body.email"},
        },
    ]
    sink = RecordingSink()
    outcome = Engine(parse_config(raw_config), "development", sink).process(
        event({"event": "e", "email": "a@b.co"})
    )
    assert [a.status for a in outcome.actions] == ["success", "failed", "success"]
    assert outcome.actions[1].error == "param `id`: path `body.domain` resolved to nothing"
    assert outcome.status == "failed"


def test_sink_failures_become_queued_or_failed(raw_config):
    raw_config["environments"]["development"]["mappings"] = [
        {"event": "e", "action": "users_identify", "params": {"id": "body.email"}},
        {
            "event": "e",
            "action": "workflows_trigger",
            "params": {"key": {"value": "k"}, "recipients": "body.email"},
        },
    ]
    config = parse_config(raw_config)
    transient = RecordingSink({"workflows_trigger": TransientSinkError("Knock answered 429", retry_after=3)})
    outcome = Engine(config, "development", transient).process(event({"event": "e", "email": "a@b.co"}))
    assert outcome.status == "queued"
    assert outcome.actions[1].status == "queued" and outcome.actions[1].retry_after == 3
    terminal = RecordingSink({"users_identify": TerminalSinkError("Knock answered 422: bad id")})
    outcome = Engine(config, "development", terminal).process(event({"event": "e", "email": "a@b.co"}))
    assert outcome.status == "failed" and outcome.actions[0].error == "Knock answered 422: bad id"
    assert outcome.actions[1].status == "success"


def test_replay_runs_only_what_did_not_succeed(raw_config):
    raw_config["environments"]["development"]["mappings"] = [
        {"event": "e", "action": "users_identify", "params": {"id": "body.email"}},
        {
            "event": "e",
            "action": "workflows_trigger",
            "params": {"key": {"value": "k"}, "recipients": "body.email"},
        },
    ]
    config = parse_config(raw_config)
    first = Engine(
        config, "development", RecordingSink({"workflows_trigger": TransientSinkError("503")})
    ).process(event({"event": "e", "email": "a@b.co"}))
    previous = {a.mapping: a for a in first.actions}
    sink = RecordingSink()
    second = Engine(config, "development", sink).process(
        event({"event": "e", "email": "a@b.co"}, origin="replay"), previous=previous
    )
    assert [r.action for r in sink.requests] == ["workflows_trigger"]
    assert second.status == "processed"
    assert [a.status for a in second.actions] == ["success", "success"]


def test_inactive_mappings(raw_config):
    mappings = raw_config["environments"]["development"]["mappings"]
    mappings[0]["active"] = False
    engine = Engine(parse_config(raw_config), "development", DryRunSink())
    assert engine.process(event({"event": "lead.enriched", "email": "a@b.co"})).status == "no_mapping"
    mappings.append({"event": "lead.enriched", "action": "tenants_set", "params": {"id": {"value": "t"}}})
    outcome = Engine(parse_config(raw_config), "development", DryRunSink()).process(
        event({"event": "lead.enriched", "email": "a@b.co"})
    )
    assert [(a.action, a.status) for a in outcome.actions] == [
        ("users_identify", "skipped"),
        ("tenants_set", "success"),
    ]


# -- malformed bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, fragments",
    [
        (b"", ["body is empty"]),
        (b"   \n", ["body is empty"]),
        (b"not json", ["not valid JSON", "line 1, column 1", "double quotes"]),
        (b'[{"event": "lead.enriched"}]', ["must be a JSON object", "got an array"]),
        (b'"lead.enriched"', ["got a string"]),
        (b"null", ["got null"]),
        (b"42", ["got a number"]),
        (
            b'{"event": "lead.enriched", "email": jane@acme.com}',
            ["line 1, column 37", "not valid JSON (text must be in double quotes)"],
        ),
        (b'{"event": "lead.enriched", "email": }', ["a value is missing", "empty Clay cell"]),
        (b'{"event": "lead.enriched", "note": "say "hi""}', ["unescaped", "double quote"]),
        (
            b'{"event": "lead.enriched",\n "email": "a@b.co",\n}',
            ["line 3, column 1", "no comma before a closing }"],
        ),
        (b'{"event": "lead.enriched"} {"x": 1}', ["text after the JSON object"]),
        (b'{"event": "lead.enriched", "email": "a@b.co"', ["line 1"]),
        (b'{"path": "C:\\Users"}', ["backslash"]),
        (b"\xff\xfe{}", ["not UTF-8", "0xff at position 0"]),
        (b'{"a": ' * 5000 + b"1" + b"}" * 5000, ["nested too deep"]),
        (b'{"a": ' * 150 + b"1" + b"}" * 150, ["nested too deep", "100 levels"]),
        (b'{"email": "a@b.co"}', ["no event type", "`body.event` is missing"]),
        (b'{"event": ""}', ["no event type"]),
        (b'{"event": 5}', ["no event type", "not text"]),
    ],
)
def test_malformed_bodies_are_invalid_and_say_why(default_engine, raw, fragments):
    outcome = default_engine.process(event(raw))
    assert outcome.status == "invalid" and outcome.actions == []
    for fragment in fragments:
        assert fragment in outcome.error, outcome.error


def test_control_characters_inside_strings_are_tolerated(default_engine):
    raw = b'{"event": "lead.enriched", "email": "a@b.co", "bio": "line one\nline\ttwo\x01"}'
    outcome = default_engine.process(event(raw))
    assert outcome.status == "processed"
    assert outcome.actions[0].payload["properties"]["bio"] == "line one\nline\ttwo\x01"


def test_bom_and_text_bodies(default_engine):
    assert (
        default_engine.process(event(b'\xef\xbb\xbf{"event": "lead.enriched", "email": "a@b.co"}')).status
        == "processed"
    )
    assert (
        default_engine.process(event('\ufeff{"event": "lead.enriched", "email": "a@b.co"}')).status
        == "processed"
    )


def test_parse_body_accepts_dicts_and_raises_only_invalid_body():
    assert parse_body({"a": 1}) == {"a": 1}
    for raw in (b"{", b"\x00", "\udcff", b"[" * 100000):
        with pytest.raises(InvalidBody):
            parse_body(raw)


# -- idempotency ----------------------------------------------------------------------------


def idempotent_engine(raw_config, key, store, window_hours=24, clock=None, sink=None):
    raw_config["environments"]["development"]["idempotency"] = {"key": key, "window_hours": window_hours}
    return Engine(
        parse_config(raw_config),
        "development",
        sink or RecordingSink(),
        store,
        clock=clock or (lambda: datetime(2026, 1, 1, tzinfo=UTC)),
    )


def test_duplicate_within_the_window_runs_no_action(raw_config):
    store = MemoryIdempotency()
    sink = RecordingSink()
    engine = idempotent_engine(raw_config, "body.row_id", store, sink=sink)
    body = {"event": "lead.enriched", "email": "a@b.co", "row_id": "r_1"}
    first = engine.process(event(body))
    second = engine.process(event(body))
    assert first.status == "processed" and first.idempotency_key == "r_1"
    assert second.status == "idempotent" and second.actions == [] and "no action ran" in second.error
    assert len(sink.requests) == 1
    other_event = engine.process(event({**body, "event": "contact.updated"}))
    assert other_event.status == "processed"  # scope includes the event type


def test_window_expiry(raw_config):
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    engine = idempotent_engine(
        raw_config, "body.row_id", MemoryIdempotency(), window_hours=1, clock=lambda: now[0]
    )
    body = {"event": "lead.enriched", "email": "a@b.co", "row_id": "r_1"}
    assert engine.process(event(body)).status == "processed"
    now[0] += timedelta(minutes=59)
    assert engine.process(event(body)).status == "idempotent"
    now[0] += timedelta(minutes=2)
    assert engine.process(event(body)).status == "processed"


def test_only_successful_executions_are_remembered(raw_config):
    store = MemoryIdempotency()
    engine = idempotent_engine(raw_config, "body.row_id", store)
    failing = {"event": "lead.enriched", "row_id": "r_2"}  # no email: fails
    assert engine.process(event(failing)).status == "failed"
    assert engine.process(event({**failing, "email": "a@b.co"})).status == "processed"


def test_content_hash_key_dedupes_unchanged_rows(raw_config):
    engine = idempotent_engine(raw_config, {"hash": "body"}, MemoryIdempotency())
    body = {"event": "lead.enriched", "email": "a@b.co", "title": "CEO"}
    first = engine.process(event(body))
    assert first.idempotency_key == content_hash(body) and len(first.idempotency_key) == 64
    assert engine.process(event(json.dumps(dict(reversed(body.items()))))).status == "idempotent"
    assert engine.process(event({**body, "title": "CTO"})).status == "processed"


@pytest.mark.parametrize(
    "row_id, fragment",
    [
        (None, "resolved to nothing"),
        ("", "resolved to nothing"),
        (123, "must be a string, got int"),
        ("x" * 256, "256 characters; the limit is 255"),
    ],
)
def test_invalid_keys_process_without_idempotency_and_say_why(raw_config, row_id, fragment):
    store = MemoryIdempotency()
    engine = idempotent_engine(raw_config, "body.row_id", store)
    body = {"event": "lead.enriched", "email": "a@b.co", "row_id": row_id}
    for _ in range(2):
        outcome = engine.process(event(body))
        assert outcome.status == "processed"
        assert outcome.idempotency_key is None and fragment in outcome.idempotency_note
    assert store.keys == {}


def test_key_of_exactly_255_characters_is_valid(raw_config):
    engine = idempotent_engine(raw_config, "body.row_id", MemoryIdempotency())
    body = {"event": "lead.enriched", "email": "a@b.co", "row_id": "x" * 255}
    assert engine.process(event(body)).status == "processed"
    assert engine.process(event(body)).status == "idempotent"


def test_concurrent_duplicates_execute_once(raw_config):
    sink = RecordingSink()
    engine = idempotent_engine(raw_config, "body.row_id", MemoryIdempotency(), sink=sink)
    body = json.dumps({"event": "lead.enriched", "email": "a@b.co", "row_id": "same"}).encode()
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(engine.process(event(body)).status)) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["idempotent"] * 7 + ["processed"]
    assert len(sink.requests) == 1


def test_event_ids_sort_by_time():
    early = new_event_id(datetime(2026, 1, 1, tzinfo=UTC))
    late = new_event_id(datetime(2026, 1, 2, tzinfo=UTC))
    assert early.startswith("evt_") and len(early) == 30 and early < late


def test_a_backfilled_rows_idempotency_keys_come_from_the_row():
    from workbench.engine import ActionRequest, row_identity

    row = row_identity("clay", "production", "lead.enriched", "k" * 255)
    first = ActionRequest("workflows_trigger", {}, "evt_1", "alert", row)
    rerun = ActionRequest("workflows_trigger", {}, "evt_2", "alert", row)
    assert first.idempotency_key == rerun.idempotency_key
    assert first.idempotency_key.startswith("row_") and len(first.idempotency_key) <= 255
    others = [
        ActionRequest("workflows_trigger", {}, "evt_1", "other", row),
        ActionRequest(
            "workflows_trigger",
            {},
            "evt_1",
            "alert",
            row_identity("clay", "production", "lead.enriched", "k"),
        ),
        ActionRequest(
            "workflows_trigger",
            {},
            "evt_1",
            "alert",
            row_identity("clay", "development", "lead.enriched", "k" * 255),
        ),
    ]
    assert len({first.idempotency_key, *(o.idempotency_key for o in others)}) == 4
    # Live events keep keys from their event id.
    assert ActionRequest("workflows_trigger", {}, "evt_1", "alert").idempotency_key == "evt_1:alert"


def test_a_batch_of_event_ids_is_made_as_single_ids_are(monkeypatch):
    moment = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
    stream = bytes(range(200))
    monkeypatch.setattr(os, "urandom", lambda n: stream[:n])
    (single,) = [new_event_id(moment)]
    batch = new_event_ids(3, moment)
    assert batch[0] == single and len(set(batch)) == 3
    monkeypatch.undo()  # real randomness again
    # The ULID layout: 48 bits of milliseconds (10 digits), 80 random bits (16 digits).
    value = 0
    for digit in single[4:]:
        value = value * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(digit)
    assert value >> 80 == int(moment.timestamp() * 1000)
    assert value & ((1 << 80) - 1) == int.from_bytes(stream[:10], "big")
    later = new_event_ids(50, datetime(2026, 3, 4, 5, 6, 8, tzinfo=UTC))
    assert all(len(i) == 30 and i > max(batch) for i in later) and len(set(later)) == 50


# -- whatever arrives, the engine answers with an outcome -------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_objects = st.dictionaries(
    st.text(max_size=6),
    st.recursive(
        json_leaves,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
        max_leaves=8,
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_bytes_parse_or_raise_invalid_body(raw):
    try:
        assert isinstance(parse_body(raw), dict)
    except InvalidBody as exc:
        assert str(exc)


@settings(max_examples=200, deadline=None)
@given(
    json_objects,
    st.sampled_from(["lead.enriched", "lead.high_intent", "account.enriched", "other"]),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_any_object_body_gets_an_outcome(body, event_type, headers):
    engine = Engine(load_config(DEFAULT_CONFIG), "development", DryRunSink())
    body = {**body, "event": event_type}
    outcome = engine.process(SourceEvent(json.dumps(body).encode(), headers))
    assert outcome.status in {"processed", "failed", "no_mapping"}
    assert outcome.to_dict("evt_x")["event"] == event_type
    json.dumps(outcome.to_dict("evt_x"))


def test_infinity_and_nan_are_not_json(default_engine):
    outcome = default_engine.process(event(b'{"event": "lead.enriched", "score": NaN}'))
    assert outcome.status == "invalid" and "`NaN` is not JSON" in outcome.error


def test_a_number_too_large_for_a_float_is_invalid_not_null(default_engine):
    outcome = default_engine.process(
        event(b'{"event": "lead.enriched", "email": "a@acme.com", "score": 1e400}')
    )
    assert outcome.status == "invalid" and "`1e400` is too large for a number" in outcome.error


@pytest.mark.parametrize(
    "raw, escape",
    [
        (b'{"event": "lead.enriched", "email": "a@acme.com", "note": "cut \\ud83d"}', "\\ud83d"),
        (b'{"event": "lead.enriched", "email": "a@acme.com", "note": "\\uDE00 first"}', "\\ude00"),
        # a control character sends the body the tolerant way; a key may hold it too
        (b'{"event": "lead.enriched", "email": "a@acme.com", "x\\ud800": "\x01"}', "\\ud800"),
    ],
)
def test_half_a_character_is_invalid_naming_the_escape(default_engine, raw, escape):
    """`\\ud83d` alone is valid JSON but not text: it would crash storing or sending the row."""
    outcome = default_engine.process(event(raw))
    assert outcome.status == "invalid", outcome.error
    assert (
        f"the escape {escape} without its pair" in outcome.error and "send the whole value" in outcome.error
    )


def test_escaped_surrogate_pairs_are_characters(default_engine):
    raw = b'{"event": "lead.enriched", "email": "a@acme.com", "note": "\\ud83d\\ude00 \x01"}'
    outcome = default_engine.process(event(raw))
    assert outcome.status == "processed"
    assert outcome.actions[0].payload["properties"]["note"] == "\U0001f600 \x01"


def test_integers_beyond_64_bits_are_kept_exactly(default_engine):
    outcome = default_engine.process(
        event(b'{"event": "lead.enriched", "email": "a@b.co", "big": 123456789012345678901234567890}')
    )
    assert outcome.actions[0].payload["properties"]["big"] == 123456789012345678901234567890


class ScriptedSink:
    """Answers each trigger with the next scripted outcome: ok, transient (Knock may have run
    it: a timeout) or refused (Knock ran nothing)."""

    def __init__(self, script):
        self.script = list(script)
        self.sent = []  # (key, outcome)

    def apply(self, request):
        outcome = self.script.pop(0)
        self.sent.append((request.idempotency_key, outcome))
        if outcome == "transient":
            raise TransientSinkError("Knock did not answer in time")
        if outcome == "refused":
            raise TerminalSinkError("Knock answered 422")
        return {"workflow_run_id": "run"}


TRIGGER_ONLY = json.loads(DEFAULT_CONFIG.read_text())
TRIGGER_ONLY["environments"]["development"]["mappings"] = [
    {
        "event": "lead.enriched",
        "action": "workflows_trigger",
        "params": {"key": {"value": "w"}, "recipients": "body.email"},
    }
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["ok", "transient", "refused"]), min_size=1, max_size=8))
def test_trigger_keys_over_any_run_of_attempts(script):
    """Attempts of one trigger, each replayed with what the log kept of the last (its key and
    attempts, as `Store.record_outcome` keeps them): a key Knock may have run the trigger under is
    the only key ever sent after it, and after a refusal of a fresh key a new key is taken (Knock
    keeps no refusal under a key, so the new key only tells the attempts apart in the log)."""
    config = parse_config(TRIGGER_ONLY)
    sink = ScriptedSink(script)
    engine = Engine(config, "development", sink)
    kept, attempts = None, 0
    for _ in script:
        plan = engine.plan(event({"event": "lead.enriched", "email": "a@b.co"}))
        mapping = plan.todo[0][0].key
        outcome = engine.apply(plan, "evt_1", earlier={mapping: (kept, attempts)} if attempts else None)
        (result,) = outcome.actions
        kept, attempts = result.request_key, attempts + 1
        if result.status == "success":
            break
    keys = [key for key, _ in sink.sent]
    for i, (key, outcome) in enumerate(sink.sent):
        if outcome == "transient":  # may have run under `key`: every later attempt sends it again
            assert all(later == key for later in keys[i:])
        if outcome == "refused" and "transient" not in [o for _, o in sink.sent[:i]]:
            assert key not in keys[i + 1 :]  # each attempt after a refusal has a key of its own
    assert keys[0] == f"evt_1:{mapping}"


@settings(max_examples=300)
@given(st.lists(st.text(), min_size=4, max_size=4))
def test_a_rows_identity_is_the_json_text_its_keys_were_always_made_from(parts):
    from workbench.engine import row_identity

    # Keys already sent to Knock derive from this text: it must not change.
    assert row_identity(*parts) == json.dumps(parts, ensure_ascii=False)

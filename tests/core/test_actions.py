import pytest

from workbench.actions import ACTION_TYPES, EXECUTION_ORDER, MAX_DATA_BYTES, normalize


def test_twelve_action_types_in_knocks_order():
    assert len(ACTION_TYPES) == 12
    assert EXECUTION_ORDER[0] == "users_identify" and EXECUTION_ORDER[-1] == "workflows_cancel"
    assert EXECUTION_ORDER.index("workflows_trigger") == 10
    assert ACTION_TYPES["workflows_trigger"].required == {"key", "recipients"}
    assert ACTION_TYPES["workflows_cancel"].required == {"key", "cancellation_key"}
    assert ACTION_TYPES["audiences_add_member"].required == {"key", "users"}
    assert ACTION_TYPES["objects_set"].required == {"collection", "id"}


@pytest.mark.parametrize(
    "action, payload, fragment",
    [
        ("users_identify", {"id": "a" * 257}, "257 characters"),
        ("users_identify", {"id": "a/b"}, "contains `/` or `#`"),
        ("users_delete", {"id": "a#b"}, "contains `/` or `#`"),
        ("users_identify", {"id": ["x"]}, "expected text"),
        ("users_identify", {"id": "x", "properties": "flat"}, "expected an object"),
        ("users_identify", {"id": "x", "properties": {"blob": "x" * 262_144}}, "Knock allows 262,144"),
        ("workflows_trigger", {"key": "k", "recipients": [f"u{i}" for i in range(1001)]}, "1001 recipients"),
        ("workflows_trigger", {"key": "k", "recipients": ["a", ""]}, "item 1"),
        ("workflows_trigger", {"key": "k", "recipients": 5}, "expected a list"),
        ("workflows_trigger", {"key": "k", "recipients": "u", "data": [1]}, "expected an object"),
        ("audiences_add_member", {"key": "k", "users": [None]}, "item 0"),
    ],
)
def test_knock_limits(action, payload, fragment):
    problems = normalize(action, payload)
    assert any(fragment in p for p in problems), problems


def test_boundaries_pass():
    assert normalize("users_identify", {"id": "a" * 256, "properties": {"b": "x" * 1000}}) == []
    assert normalize("workflows_trigger", {"key": "k", "recipients": [f"u{i}" for i in range(1000)]}) == []


def test_single_recipient_is_wrapped_and_numbers_become_text():
    payload = {"key": "k", "recipients": "sales-team", "tenant": 42}
    assert normalize("workflows_trigger", payload) == []
    assert payload == {"key": "k", "recipients": ["sales-team"], "tenant": "42"}
    user = {"id": 12345.0}
    assert normalize("users_identify", user) == [] and user["id"] == "12345"


def test_object_recipient_is_wrapped():
    payload = {"collection": "accounts", "id": "acme", "recipients": {"id": "u1", "collection": "users"}}
    assert normalize("objects_subscribe", payload) == []
    assert payload["recipients"] == [{"id": "u1", "collection": "users"}]


def test_data_limit_is_ten_megabytes():
    big = {"blob": "x" * (MAX_DATA_BYTES - 20)}
    assert normalize("workflows_trigger", {"key": "k", "recipients": ["u"], "data": big}) == []
    bigger = {"blob": "x" * MAX_DATA_BYTES}
    assert normalize("workflows_trigger", {"key": "k", "recipients": ["u"], "data": bigger})


def test_size_hint_is_only_a_shortcut_for_small_values():
    payload = {"id": "x", "properties": {"blob": "x" * 300_000}}
    assert normalize("users_identify", payload, size_hint=10_000_000)
    assert normalize("users_identify", {"id": "x", "properties": {"a": 1}}, size_hint=100) == []


def test_a_trigger_tenant_may_be_an_object_and_create_audience_a_flag():
    trigger = {"key": "k", "recipients": ["u1"], "tenant": {"id": "acme", "name": "Acme"}}
    assert normalize("workflows_trigger", trigger) == [] and trigger["tenant"] == {
        "id": "acme",
        "name": "Acme",
    }
    assert normalize("workflows_trigger", {"key": "k", "recipients": ["u1"], "tenant": {"name": "x"}}) == [
        "param `tenant`: a tenant object needs a text `id`"
    ]
    member = {"key": "vip", "users": ["u1"], "tenant": {"id": "acme"}}
    assert normalize("audiences_add_member", member) == ["param `tenant`: expected text, got dict"]
    flag = {"key": "vip", "users": ["u1"], "create_audience": "TRUE"}
    assert normalize("audiences_add_member", flag) == [] and flag["create_audience"] is True
    assert normalize("audiences_add_member", {"key": "v", "users": ["u"], "create_audience": "maybe"}) == [
        'param `create_audience`: expected true or false, got "maybe"'
    ]

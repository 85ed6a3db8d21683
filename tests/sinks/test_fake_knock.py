"""The fake Knock keeps what Knock's API description and overview say: the suite's other Knock
tests are only as good as it is strict. These requests go without the SDK, on purpose."""

from __future__ import annotations

import math
import time

import pytest
import requests

from tests.fakes.knock import API_KEY, FakeKnock
from tests.fakes.knock_spec import CONTRACT, spec_missing_reason

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def call(fake, method, path, body=None, **kwargs):
    return requests.request(method, fake.url + path, json=body, headers=AUTH, timeout=10, **kwargs)


def assert_knock_error(response, status, code):
    assert response.status_code == status
    error = response.json()
    assert set(error) == {"code", "message", "status", "type"}
    assert (error["code"], error["status"]) == (code, status)


@pytest.mark.parametrize(
    "method, path, body, why",
    [
        ("POST", "/v1/users/bulk/identify", {"users": [{"name": "no id"}]}, "'id' is a required property"),
        ("POST", "/v1/workflows/new-lead/trigger", {"recipients": "u1"}, "is not of type 'array'"),
        ("PUT", "/v1/users/u1", {"email": 5}, "body['email']"),
        ("POST", "/v1/tenants/bulk/delete", None, "`tenant_ids` is required"),
        ("GET", "/v1/bulk_operations/not-a-uuid", None, "not a UUID"),
    ],
)
def test_a_request_the_spec_refuses_is_refused_as_knock_does(fake_knock, method, path, body, why):
    before = CONTRACT.refused_elsewhere
    response = call(fake_knock, method, path, body)
    assert_knock_error(response, 422, "invalid_params")
    assert why in response.json()["message"]
    assert CONTRACT.refused_elsewhere == before + 1
    assert fake_knock.state.users == {}


def test_documented_limits(fake_knock):
    many = [f"u{i}" for i in range(101)]
    subscribe = call(fake_knock, "POST", "/v1/objects/c/o/subscriptions", {"recipients": many})
    assert_knock_error(subscribe, 422, "invalid_params")
    unknown = call(fake_knock, "POST", "/v1/workflows/no-such-flow/trigger", {"recipients": ["u1"]})
    assert_knock_error(unknown, 404, "workflow_missing")
    actor = call(
        fake_knock, "POST", "/v1/workflows/new-lead/trigger", {"recipients": ["u1"], "actor": "ghost"}
    )
    assert_knock_error(actor, 422, "actor_missing")
    members = {"members": [{"user": {"id": "u1"}}]}
    assert_knock_error(
        call(fake_knock, "POST", "/v1/audiences/vip/members", members), 404, "resource_missing"
    )
    created = call(
        fake_knock, "POST", "/v1/audiences/vip/members", members, params={"create_audience": "true"}
    )
    assert created.status_code == 204 and fake_knock.state.audiences == {"vip"}
    big = call(fake_knock, "PUT", "/v1/users/u2", {"notes": "x" * (256 * 1024)})
    assert_knock_error(big, 422, "invalid_params")
    bulk = call(
        fake_knock, "POST", "/v1/users/bulk/identify", {"users": [{"id": f"u{i}"} for i in range(1001)]}
    )
    assert_knock_error(bulk, 422, "invalid_params")


def wait_for(fake, operation_id, deadline=30.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        operation = call(fake, "GET", f"/v1/bulk_operations/{operation_id}").json()
        if operation["status"] == "completed":
            return operation
        time.sleep(0.01)
    raise AssertionError(f"bulk operation {operation_id} did not complete")


def test_a_bulk_operation_is_queued_then_completed_with_its_error_items(fake_knock):
    fake_knock.fail_bulk_items("u2", message="email is not valid")
    answer = call(fake_knock, "POST", "/v1/users/bulk/identify", {"users": [{"id": "u1"}, {"id": "u2"}]})
    operation = answer.json()
    assert (answer.status_code, operation["status"], operation["success_count"]) == (200, "queued", 0)
    done = wait_for(fake_knock, operation["id"])
    assert (done["success_count"], done["error_count"]) == (1, 1)
    assert done["error_items"] == [{"id": "u2", "collection": None, "message": "email is not valid"}]
    assert set(fake_knock.state.users) == {"u1"}


def test_an_entity_updated_again_within_a_second_is_skipped_and_named():
    if spec_missing_reason():
        pytest.skip(spec_missing_reason())
    fake = FakeKnock(speed=0.01, bulk_seconds=0.0)  # Knock's second lasts 100 s here
    try:
        body = {"users": [{"id": "u1", "name": "One"}, {"id": "u2"}]}
        first = call(fake, "POST", "/v1/users/bulk/identify", body)
        assert not any(h.startswith("x-ratelimited") for h in first.headers)
        again = call(fake, "POST", "/v1/users/bulk/delete", {"user_ids": ["u1", "u3"]})
        assert again.status_code == 200 and again.headers["x-ratelimited-user_ids"] == "u1"
        twice = call(fake, "POST", "/v1/tenants/bulk/set", {"tenants": ["t1", {"id": "t1", "name": "T"}]})
        assert twice.headers["x-ratelimited-tenants"] == "t1"  # twice in one call: the second is skipped
    finally:
        fake.stop()


def test_calls_beyond_a_tier_are_answered_429_with_retry_after():
    """Bulk identify is tier 1 (1 a second): calls made back to back without pacing get 429s."""
    if spec_missing_reason():
        pytest.skip(spec_missing_reason())
    fake = FakeKnock(speed=0.01, bulk_seconds=0.0)  # Knock's second lasts 100 s here
    try:
        statuses, limited = [], None
        for i in range(3):
            response = call(fake, "POST", "/v1/users/bulk/identify", {"users": [{"id": f"u{i}"}]})
            statuses.append(response.status_code)
            if response.status_code == 429:
                limited = response
        assert statuses == [200, 200, 429]  # a burst of one more than the tier's rate, then none
        assert_knock_error(limited, 429, "rate_limited")
        wait = float(limited.headers["retry-after-ms"]) / 1000
        assert 0 < wait <= 100 and limited.headers["Retry-After"] == str(math.ceil(wait))
    finally:
        fake.stop()


def test_only_a_2xx_answer_is_kept_under_an_idempotency_key(fake_knock):
    key = {"Idempotency-Key": "k-1", **AUTH}
    body = {"recipients": ["u1"]}
    fake_knock.fail(422, path="/v1/workflows")
    url = fake_knock.url + "/v1/workflows/new-lead/trigger"
    assert requests.post(url, json=body, headers=key, timeout=10).status_code == 422
    first = requests.post(url, json=body, headers=key, timeout=10)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    again = requests.post(url, json=body, headers=key, timeout=10)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = requests.post(url, json={"recipients": ["u2"]}, headers=key, timeout=10)
    assert other.status_code == 422
    assert len(fake_knock.runs()) == 1

import pytest

from tests.fakes.knock_mapi import SERVICE_TOKEN
from workbench.deploy import ManagementClient
from workbench.deploy.client import retry_after_seconds
from workbench.errors import KnockManagementError

BODY = {
    "source": {
        "name": "Clay",
        "environment_settings": {
            "development": {"settings": {"event_type_path": "body.event"}, "mappings": []}
        },
    }
}


def test_no_token_says_where_to_get_one():
    with pytest.raises(KnockManagementError, match="KNOCK_SERVICE_TOKEN.*service token"):
        ManagementClient(environ={})


def test_the_token_comes_from_the_environment(fake_mapi):
    with ManagementClient(base_url=fake_mapi.url, environ={"KNOCK_SERVICE_TOKEN": SERVICE_TOKEN}) as client:
        assert client.get_source("clay", "development") is None


def test_a_refused_token_says_what_to_do(fake_mapi):
    client = ManagementClient(token="knock_st_wrong", base_url=fake_mapi.url)
    with client, pytest.raises(KnockManagementError, match=r"401.*KNOCK_SERVICE_TOKEN") as refused:
        client.get_source("clay", "development")
    assert refused.value.knock_status == 401


def test_429_is_retried_after_the_time_knock_asks(client, fake_mapi):
    fake_mapi.fail(429, times=2, retry_after="3")
    source = client.upsert_source("clay", "development", BODY)
    assert source["key"] == "clay"
    assert client.waits == [3.0, 3.0]
    assert [r[0] for r in fake_mapi.requests()] == ["PUT", "PUT", "PUT"]


def test_5xx_is_retried_with_backoff_then_given_up_clearly(client, fake_mapi):
    fake_mapi.fail(503, times=10)
    with pytest.raises(KnockManagementError, match="503 after 5 tries.*try again") as failed:
        client.get_source("clay", "development")
    assert failed.value.knock_status == 503
    assert client.waits == [0.5, 1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("status", "says"),
    [(403, "role that may manage sources"), (404, "check the key"), (422, "fix what it names")],
)
def test_refusals_say_what_to_do(client, fake_mapi, status, says):
    fake_mapi.fail(status, method="POST")
    with pytest.raises(KnockManagementError, match=says) as refused:
        client.rehearse("clay", "development", {"body": {"event": "x"}})
    assert refused.value.knock_status == status
    assert client.waits == []


def test_knocks_own_message_is_shown(client, fake_mapi):
    client.upsert_source("clay", "development", BODY)
    with pytest.raises(KnockManagementError, match="422: rehearse cannot be run in production"):
        client.rehearse("clay", "production", {"body": {"event": "x"}})


def test_retry_after_as_a_date():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_the_provider_defaults_are_read(client):
    provider = client.source_provider("clay")
    assert provider["default_action_mappings"][0]["event_type"] == "lead.enriched"


def test_a_request_outside_the_spec_is_refused_by_the_fake(client, fake_mapi):
    with pytest.raises(KnockManagementError, match="400"):
        client.logs("clay", "development", colour="blue")
    assert "query parameter `colour`" in fake_mapi.state.violations[0]
    fake_mapi.state.violations.clear()

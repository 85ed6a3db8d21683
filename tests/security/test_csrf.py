"""Admin actions from a browser need our page's Origin and its signed form token; Bearer clients do not."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.receiver.conftest import ADMIN_TOKEN, admin, auth, build_app, lead, receiver_config, write_config

DEV = "/sources/clay/development"
BROWSER = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()}
OWN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def client(tmp_path):
    config = write_config(tmp_path / "clay.json", receiver_config())
    return build_app(config, f"sqlite:///{tmp_path / 'events.sqlite'}").test_client()


def failed_event(client) -> str:
    reply = client.post(DEV, data=json.dumps(lead(email="")), headers=auth()).get_json()
    assert reply["status"] == "failed"
    return reply["id"]


def token_of(client, path=DEV) -> str:
    html = client.get(path, headers=BROWSER).get_data(as_text=True)
    return re.search(r'name="form_token" value="([^"]+)"', html).group(1)


def replays(client, event_id) -> int:
    return client.get(f"{DEV}/logs/{event_id}", headers=admin()).get_json()["replays"]


REFUSED = [
    pytest.param({"Origin": "null"}, True, id="origin-null"),
    pytest.param({}, True, id="no-origin"),
    pytest.param({"Origin": "http://evil.example"}, True, id="other-origin"),
    pytest.param({"Origin": "http://localhost.evil.example"}, True, id="lookalike-origin"),
    pytest.param({**OWN, "Sec-Fetch-Site": "cross-site"}, True, id="cross-site-fetch"),
    pytest.param(OWN, False, id="no-token"),
]


@pytest.mark.parametrize(("headers", "with_token"), REFUSED)
@pytest.mark.parametrize("action", ["replay", "replay-failed"])
def test_browser_requests_without_our_origin_or_token_are_refused(client, headers, with_token, action):
    event_id = failed_event(client)
    data = {"from": "page", "form_token": token_of(client) if with_token else ""}
    url = f"{DEV}/logs/{event_id}/replay" if action == "replay" else f"{DEV}/replay-failed"
    r = client.post(url, data=data, headers={**BROWSER, **headers})
    assert r.status_code == 403 and r.get_json()["status"] == "forbidden", r.get_data(as_text=True)
    assert replays(client, event_id) == 0


def test_a_token_is_for_its_own_page_and_admin_token_only(client, tmp_path):
    event_id = failed_event(client)
    staging_like = token_of(client, "/sources/clay/dedupe?confirm=replay-failed")
    other = build_app(tmp_path / "clay.json", f"sqlite:///{tmp_path / 'other.sqlite'}", ADMIN_TOKEN="another")
    foreign = re.search(
        r'name="form_token" value="([^"]+)"',
        other.test_client()
        .get(
            f"{DEV}?confirm=replay-failed",
            headers={"Authorization": "Basic " + base64.b64encode(b"a:another").decode()},
        )
        .get_data(as_text=True),
    ).group(1)
    for token in (staging_like, foreign, token_of(client) + "x"):
        r = client.post(
            f"{DEV}/logs/{event_id}/replay", data={"form_token": token}, headers={**BROWSER, **OWN}
        )
        assert r.status_code == 403
    assert replays(client, event_id) == 0


def test_our_page_and_bearer_clients_replay(client):
    event_id = failed_event(client)
    r = client.post(
        f"{DEV}/logs/{event_id}/replay",
        data={"from": "page", "form_token": token_of(client)},
        headers={**BROWSER, **OWN},
    )
    assert r.status_code == 303
    # An API client: no Origin, no form, the admin token as Bearer.
    r = client.post(f"{DEV}/logs/{event_id}/replay", headers=admin())
    assert r.status_code == 200 and r.get_json()["id"] == event_id
    r = client.post(f"{DEV}/replay-failed", headers=admin())
    assert r.status_code == 200 and r.get_json() == {"replayed": 1, "processed": 0, "failed": 1, "left": 1}
    assert replays(client, event_id) == 3


def test_the_page_sends_same_origin_referrers(client):
    # With `no-referrer`, Chromium sends `Origin: null` on the page's own posts, which are refused.
    assert client.get(DEV, headers=BROWSER).headers["Referrer-Policy"] == "same-origin"


def test_an_api_client_replays_failed_events_by_filter(client):
    kept = failed_event(client)
    client.post(DEV, data=json.dumps({"event": "lead.archived"}), headers=auth())
    other = client.post(DEV, data=json.dumps({"event": "table.row"}), headers=auth()).get_json()
    assert other["status"] == "failed"
    r = client.post(f"{DEV}/replay-failed?event=table.row", headers=admin())
    assert r.get_json() == {"replayed": 1, "processed": 0, "failed": 1, "left": 1}
    assert replays(client, other["id"]) == 1 and replays(client, kept) == 0
    r = client.post(f"{DEV}/replay-failed?since=yesterday", headers=admin())
    assert r.status_code == 400 and "since must be a time" in r.get_json()["error"]

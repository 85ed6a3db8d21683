"""No stored row breaks the event-log page: deep nesting, big bodies and payloads, long names."""

from __future__ import annotations

import base64
import json

import pytest

from tests.receiver.conftest import ADMIN_TOKEN, auth, build_app, lead, receiver_config, write_config

DEV = "/sources/clay/development"
BROWSER = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()}


@pytest.fixture
def client(tmp_path):
    config = write_config(tmp_path / "clay.json", receiver_config())
    return build_app(config, f"sqlite:///{tmp_path / 'events.sqlite'}").test_client()


def page(client, path=DEV):
    r = client.get(path, headers=BROWSER)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.get_data(as_text=True)


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_rows_show_as_raw_text(client, depth):
    deep = "[" * depth + "]" * depth
    sent = client.post(DEV, data=deep, headers=auth()).get_json()
    assert sent["status"] == "invalid"
    nested = '{"event": "lead.enriched", "email": "deep@acme.com", "x": ' + deep + "}"
    other = client.post(DEV, data=nested, headers=auth()).get_json()
    listing = page(client)
    assert sent["id"] in listing and other["id"] in listing
    for event_id in (sent["id"], other["id"]):
        whole = page(client, f"{DEV}/events/{event_id}")
        assert "[[[[" in whole  # the raw text, not a 500


def test_big_rows_give_a_bounded_page_and_whole_entries_on_demand(client):
    blob = "x" * (4 * 1024 * 1024)
    sent = [client.post(DEV, data=json.dumps(lead(blob=blob)), headers=auth()).get_json() for _ in range(5)]
    assert all(s["id"].startswith("evt_") for s in sent)
    long_event = client.post(DEV, data=json.dumps({"event": "e" * 500_000}), headers=auth()).get_json()
    html = page(client, f"{DEV}?limit=100")
    # Six rows: each shows a few KB of its body and payloads, never its megabytes.
    assert len(html.encode()) < 200_000
    assert all(s["id"] in html for s in sent) and long_event["id"] in html
    assert "first 1000 of" in html
    whole = page(client, f"{DEV}/events/{sent[0]['id']}")
    assert whole.count(blob) >= 2  # the body and the payload, whole


def test_the_page_size_is_capped(client):
    r = client.get(f"{DEV}?limit=100000", headers=BROWSER)
    assert r.status_code == 200
    for _ in range(3):
        client.post(DEV, data=json.dumps(lead()), headers=auth())
    html = page(client, f"{DEV}?limit=2")
    assert html.count('<details class="event"') == 2 and 'class="older"' in html


@pytest.mark.browser
@pytest.mark.slow
def test_hostile_rows_under_workbench_serve_leave_the_page_whole_in_chromium(browser, tmp_path):
    from tests.receiver.conftest import Served

    config = write_config(tmp_path / "clay.json", receiver_config())
    served = Served(config, f"sqlite:///{tmp_path / 'events.sqlite'}", workers=1, log=tmp_path / "serve.log")
    try:
        deep = served.post(body="[" * 1000 + "]" * 1000, headers=auth()).json()
        big = served.post(body=lead(blob="x" * (1024 * 1024)), headers=auth()).json()
        context = browser.new_context(http_credentials={"username": "admin", "password": ADMIN_TOKEN})
        context.set_default_timeout(60_000)
        page = context.new_page()
        response = page.goto(f"{served.url}{DEV}")
        assert response.status == 200 and len(response.body()) < 50_000
        for event_id in (deep["id"], big["id"]):
            assert page.locator(f"details#{event_id}").count() == 1
        page.locator(f"details#{big['id']} summary").click()
        with page.expect_navigation():
            page.locator(f"details#{big['id']} a.whole-entry").click()
        assert len(page.locator("pre.raw-body").inner_text()) > 1024 * 1024
        context.close()
    finally:
        served.stop()

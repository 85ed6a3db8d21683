"""The server-rendered event-log page: everything escaped, filters, the replay form."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import event

from .conftest import ADMIN_TOKEN, admin, auth, lead, receiver_config, write_config

DEV = "/sources/clay/development"
HOUR = timedelta(hours=1)
BROWSER = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()}


def post(client, body, headers=None):
    return client.post(DEV, data=json.dumps(body), headers=headers or auth()).get_json()


def page(client, query=""):
    r = client.get(f"{DEV}{query}", headers=BROWSER)
    assert r.status_code == 200 and r.mimetype == "text/html"
    return r.get_data(as_text=True)


def form_token(html: str) -> str:
    return re.search(r'name="form_token" value="([^"]+)"', html).group(1)


def test_page_lists_events_newest_first_with_details(client):
    first = post(client, lead(email="first@acme.com"))
    second = post(client, lead(email=""), {**auth(), "X-Clay-Table-Id": "t_42"})
    html = page(client)
    assert html.index(second["id"]) < html.index(first["id"])
    assert "first@acme.com" in html
    assert "param `id`" in html and "body.email" in html
    entry = page(client, f"/events/{second['id']}")
    headers = entry.split('<pre class="headers">', 1)[1].split("</pre>", 1)[0]
    assert "t_42" in headers and "authorization" not in headers.lower()


def test_everything_is_escaped(client):
    evil = '<script>alert("x")</script>'
    first = post(client, lead(full_name=evil, email=""), {**auth(), "X-Evil": "<img src=x onerror=alert(1)>"})
    sent = post(client, {"event": evil})
    html = page(client) + page(client, f"/events/{first['id']}") + page(client, f"/events/{sent['id']}")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html


def test_the_page_runs_no_script_and_cannot_be_framed(client):
    r = client.get(DEV, headers=admin())
    assert r.status_code == 200
    policy = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert (
        "script-src 'self'" in policy
        and "unsafe-inline" not in policy.split("script-src", 1)[1].split(";")[0]
    )
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"


def test_admin_answers_are_not_cached(client):
    sent = post(client, lead())
    for path in (DEV, f"{DEV}/logs", f"{DEV}/status", f"{DEV}/events/{sent['id']}"):
        assert client.get(path, headers=admin()).headers["Cache-Control"] == "no-store", path


def test_filters_by_status_and_event(client):
    ok = post(client, lead())
    failed = post(client, lead(email=""))
    other = post(client, {"event": "lead.archived"})
    html = page(client, "?status=failed")
    assert failed["id"] in html and ok["id"] not in html and other["id"] not in html
    html = page(client, "?event=lead.archived")
    assert other["id"] in html and ok["id"] not in html
    assert 'name="event" list="event-types" value="lead.archived"' in html


def test_replay_button_only_for_failed_and_queued(client):
    ok = post(client, lead())
    failed = post(client, lead(email=""))
    html = page(client)
    buttons = re.findall(r'action="[^"]*/logs/(evt_\w+)/replay"', html)
    assert buttons == [failed["id"]] and ok["id"] not in buttons


def test_replay_form_redirects_back_to_the_event(client, config_path):
    failed = post(client, {"event": "lead.enriched", "work_email": "jane@acme.com"})
    raw = receiver_config()
    raw["environments"]["development"]["mappings"][0]["params"]["id"] = "body.work_email"
    write_config(config_path, raw)
    token = form_token(page(client, "?status=failed&q=jane"))
    r = client.post(
        f"{DEV}/logs/{failed['id']}/replay",
        data={"from": "page", "form_token": token, "back": "status=failed&q=jane&evil=1"},
        headers={**BROWSER, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 303
    location = r.headers["Location"]
    assert f"replayed={failed['id']}" in location and "status=failed" in location and "q=jane" in location
    assert "evil" not in location
    html = page(client, f"?replayed={failed['id']}")
    notice = html.split('id="replay-notice"', 1)[1].split("</div>", 1)[0]
    assert failed["id"] in notice and "processed" in notice and "users_identify</code> success" in notice
    assert 'data-status="processed"' in html.split(f'<details class="event" id="{failed["id"]}"', 1)[1][:40]


def test_unknown_environment_page_is_404(client):
    r = client.get("/sources/clay/staging", headers=BROWSER)
    assert r.status_code == 404 and "staging" in r.get_json()["error"]


def test_page_runs_the_same_few_statements_however_many_events_it_shows(app, client):
    for n in range(50):
        post(client, lead(email=f"lead{n}@acme.com" if n % 3 else ""))
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = app.extensions["workbench"].store.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        html = page(client)
        for_fifty = len(seen)
        seen.clear()
        page(client, "?limit=5")
        for_five = len(seen)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(re.findall(r'<details class="event" id="evt_', html)) == 50
    # The events, then their actions: not one query per row.
    assert for_fifty == for_five <= 4


def test_a_triggers_idempotency_key_is_shown(client):
    sent = post(client, lead(event="lead.high_intent", icp_score="91"))
    (trigger,) = [a for a in sent["actions"] if a["action"] == "workflows_trigger"]
    assert trigger["status"] == "success"
    entry = client.get(f"{DEV}/logs/{sent['id']}", headers=admin()).get_json()
    (logged,) = [a for a in entry["actions"] if a["action"] == "workflows_trigger"]
    assert logged["request_key"] == f"{sent['id']}:{logged['mapping']}"
    assert f"Idempotency-Key <code>{logged['request_key']}</code>" in page(client)


def test_filters_survive_a_page_change_and_links_carry_them(client):
    for n in range(5):
        post(client, lead(email=""))
        post(client, lead(email=f"ok{n}@acme.com"))
    html = page(client, "?status=failed&limit=2&q=Jane&tz=Europe/Paris")
    older = re.search(r'class="older" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert all(
        part in older for part in ("status=failed", "limit=2", "q=Jane", "tz=Europe", "before=", "evt_")
    )
    second = page(client, older[len(DEV) :])
    assert second.count('data-status="failed"') == 2 and 'data-status="processed"' not in second
    assert 'class="newer"' in second and 'class="older"' in second


def test_a_time_range_is_read_in_the_browsers_zone(client):
    sent = post(client, lead())
    logged = client.get(f"{DEV}/logs/{sent['id']}", headers=admin()).get_json()["received_at"]
    received = datetime.fromisoformat(logged.replace("Z", "+00:00"))
    # The same instant as New York wall time: an hour on each side of it finds the event.
    local = received.astimezone(ZoneInfo("America/New_York")).replace(tzinfo=None, microsecond=0)
    since, until = f"{local - HOUR:%Y-%m-%dT%H:%M:%S}", f"{local + HOUR:%Y-%m-%dT%H:%M:%S}"
    html = page(client, f"?since={since}&until={until}&tz=America/New_York")
    assert sent["id"] in html and f'name="since" value="{since}"' in html
    # Read as UTC, that wall time is four or five hours away.
    assert sent["id"] not in page(client, f"?since={since}&until={until}")


def test_a_bad_filter_says_what_to_send(client):
    for query, words in [
        ("?status=nope", "status must be one of"),
        ("?since=yesterday", "since must be a time"),
        ("?before=garbage", "page position"),
        ("?origin=x", "origin must be one of"),
    ]:
        r = client.get(f"{DEV}{query}", headers=BROWSER)
        assert r.status_code == 400 and words in r.get_json()["error"], query


def test_statuses_wear_the_workbenchs_outcome_colours(client):
    from workbench.colours import OUTCOME_COLOURS, OUTCOME_TINTS

    html = page(client)
    for status in ("failed", "skipped", "processed", "queued"):
        rule = (
            f".status-{status} {{ background: {OUTCOME_TINTS[status]}; color: {OUTCOME_COLOURS[status]}; }}"
        )
        assert rule in html, status


def test_replay_all_goes_a_batch_at_a_time_oldest_first(client, config_path, monkeypatch):
    from workbench.receiver import page as event_page

    monkeypatch.setattr(event_page, "REPLAY_BATCH", 2)
    failed = [
        post(client, {"event": "lead.enriched", "work_email": f"k{n}@acme.com"})["id"] for n in range(3)
    ]
    raw = receiver_config()
    raw["environments"]["development"]["mappings"][0]["params"]["id"] = "body.work_email"
    write_config(config_path, raw)
    html = page(client, "?confirm=replay-failed")
    assert 'data-count="3"' in html and "Replay the oldest 2 failed events" in html
    r = client.post(
        f"{DEV}/replay-failed",
        data={"from": "page", "form_token": form_token(html), "back": "status=failed&confirm=replay-failed"},
        headers={**BROWSER, "Origin": "http://localhost"},
    )
    assert r.status_code == 303 and "confirm" not in r.headers["Location"]
    notice = page(client, r.headers["Location"][len(DEV) :])
    assert "Replayed 2 failed events: 2 now processed" in notice and "replay more" in notice
    statuses = [client.get(f"{DEV}/logs/{i}", headers=admin()).get_json()["status"] for i in failed]
    assert statuses == ["processed", "processed", "failed"]

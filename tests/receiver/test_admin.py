"""Admin API: token rules, log filters, one entry, replay after a config fix, status."""

from __future__ import annotations

import base64
import json

import pytest

from .conftest import ADMIN_TOKEN, SECRET, Served, admin, auth, lead, receiver_config, write_config

DEV = "/sources/clay/development"
ADMIN_URLS = [f"{DEV}/logs", f"{DEV}/status", DEV, f"{DEV}/logs/evt_01ABC"]


def basic(password: str, user: str = "anyone") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admin_refused_when_token_unset(make_app, url):
    client = make_app(ADMIN_TOKEN=None).test_client()
    for headers in ({}, admin(), admin("")):
        r = client.get(url, headers=headers)
        assert r.status_code == 403
        assert r.get_json()["status"] == "admin_disabled"
        assert "WORKBENCH_ADMIN_TOKEN is not set" in r.get_json()["error"]


@pytest.mark.parametrize("url", ADMIN_URLS[:3])
def test_admin_token_as_bearer_or_basic_password(client, url):
    assert client.get(url, headers=admin()).status_code == 200
    assert client.get(url, headers=basic(ADMIN_TOKEN)).status_code == 200
    assert client.get(url, headers={"Authorization": f"bearer {ADMIN_TOKEN}"}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, admin("nope"), admin(ADMIN_TOKEN + "x"), basic("nope"), basic("", user=ADMIN_TOKEN), auth(SECRET)],
    ids=["none", "wrong", "longer", "basic-wrong", "token-as-user", "signing-secret"],
)
@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admin_wrong_or_missing_token_is_401(client, url, headers):
    r = client.get(url, headers=headers)
    assert r.status_code == 401
    body = r.get_json()
    assert body["status"] == "unauthorized" and "admin token" in body["error"]
    assert ADMIN_TOKEN not in r.get_data(as_text=True) and "nope" not in r.get_data(as_text=True)
    scheme = "Basic" if url == DEV else "Bearer"
    assert r.headers["WWW-Authenticate"].startswith(scheme)


def test_admin_token_does_not_open_ingestion(client):
    r = client.post(DEV, data=json.dumps(lead()), headers=admin())
    assert r.status_code == 401


def test_admin_token_is_read_from_the_environment(monkeypatch, config_path, store_url):
    from workbench.receiver import create_app

    monkeypatch.setenv("WORKBENCH_ADMIN_TOKEN", "from-env-token")
    app = create_app({"CONFIG_PATHS": [config_path], "STORE_URL": store_url})
    assert app.test_client().get(f"{DEV}/logs", headers=admin("from-env-token")).status_code == 200
    monkeypatch.delenv("WORKBENCH_ADMIN_TOKEN")
    app = create_app({"CONFIG_PATHS": [config_path], "STORE_URL": store_url})
    assert app.test_client().get(f"{DEV}/logs", headers=admin("from-env-token")).status_code == 403


def post(client, body, headers=None, url=DEV):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(url, data=data, headers=headers or auth())


def test_logs_newest_first_with_filters(client):
    ids = [
        post(client, lead(email="a@acme.com")).get_json()["id"],
        post(client, lead(email="")).get_json()["id"],
        post(client, {"event": "lead.archived"}).get_json()["id"],
        post(client, lead(email="b@acme.com")).get_json()["id"],
    ]
    events = client.get(f"{DEV}/logs", headers=admin()).get_json()["events"]
    assert sorted(e["id"] for e in events) == sorted(ids)
    stamps = [e["received_at"] for e in events]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert set(events[0]) >= {"id", "status", "event", "received_at"}
    failed = client.get(f"{DEV}/logs?status=failed", headers=admin()).get_json()["events"]
    assert [e["id"] for e in failed] == [ids[1]]
    archived = client.get(f"{DEV}/logs?event=lead.archived", headers=admin()).get_json()["events"]
    assert [e["id"] for e in archived] == [ids[2]]
    assert len(client.get(f"{DEV}/logs?limit=2", headers=admin()).get_json()["events"]) == 2
    later = client.get(f"{DEV}/logs?since=2999-01-01T00:00:00Z", headers=admin()).get_json()["events"]
    assert later == []
    earlier = client.get(f"{DEV}/logs?since=2000-01-01T00:00:00Z", headers=admin()).get_json()["events"]
    assert len(earlier) == 4
    other_env = client.get("/sources/clay/dedupe/logs", headers=admin()).get_json()["events"]
    assert other_env == []


@pytest.mark.parametrize(
    "query,words",
    [
        ("limit=abc", "whole number"),
        ("limit=0", "from 1"),
        ("since=yesterday", "ISO 8601"),
        ("status=failure", "status must be one of received, processed, idempotent, no_mapping, queued"),
    ],
)
def test_bad_log_filters_say_what_to_send(client, query, words):
    r = client.get(f"{DEV}/logs?{query}", headers=admin())
    assert r.status_code == 400 and words in r.get_json()["error"]


def test_one_entry_is_whole(client):
    reply = post(client, lead(), {**auth(), "X-Clay-Table-Id": "t_1"}).get_json()
    entry = client.get(f"{DEV}/logs/{reply['id']}", headers=admin()).get_json()
    assert entry["id"] == reply["id"] and entry["origin"] == "live"
    assert json.loads(entry["body"]) == lead()
    assert entry["headers"]["x-clay-table-id"] == "t_1"
    (action,) = entry["actions"]
    assert action["payload"]["properties"] == lead()
    assert action["status"] == "success"
    missing = client.get(f"{DEV}/logs/evt_00000000000000000000000000", headers=admin())
    assert missing.status_code == 404 and missing.get_json()["status"] == "not_found"
    elsewhere = client.get(f"/sources/clay/dedupe/logs/{reply['id']}", headers=admin())
    assert elsewhere.status_code == 404


def test_replay_after_fixing_the_config(client, config_path):
    reply = post(client, {"event": "lead.enriched", "work_email": "jane@acme.com"}).get_json()
    assert reply["status"] == "failed" and "body.email" in reply["actions"][0]["error"]
    raw = receiver_config()
    raw["environments"]["development"]["mappings"][0]["params"]["id"] = "body.work_email"
    write_config(config_path, raw)
    r = client.post(f"{DEV}/logs/{reply['id']}/replay", headers=admin())
    assert r.status_code == 200, r.get_json()
    entry = r.get_json()
    assert entry["id"] == reply["id"] and entry["status"] == "processed"
    assert entry["actions"][0]["status"] == "success"
    assert entry["actions"][0]["payload"]["id"] == "jane@acme.com"


def test_replay_from_another_site_is_refused(client):
    reply = post(client, lead(email="")).get_json()
    r = client.post(
        f"{DEV}/logs/{reply['id']}/replay",
        data={"from": "page"},
        headers={**basic(ADMIN_TOKEN), "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 403 and "event-log page" in r.get_json()["error"]
    entry = client.get(f"{DEV}/logs/{reply['id']}", headers=admin()).get_json()
    assert entry["status"] == "failed"


def test_configs_reload_when_the_file_changes(client, config_path):
    assert post(client, {"event": "lead.archived"}).get_json()["status"] == "no_mapping"
    raw = receiver_config()
    raw["environments"]["development"]["mappings"].append(
        {"event": "lead.archived", "action": "users_delete", "params": {"id": "body.email"}}
    )
    write_config(config_path, raw)
    reply = post(client, {"event": "lead.archived", "email": "gone@acme.com"}).get_json()
    assert reply["status"] == "processed" and reply["actions"][0]["action"] == "users_delete"


def test_status(client):
    post(client, lead())
    post(client, lead(email=""))
    body = client.get(f"{DEV}/status", headers=admin()).get_json()
    assert body["counts"]["processed"] == 1 and body["counts"]["failed"] == 1
    assert body["last_received_at"]
    assert body["mappings"] == len(receiver_config()["environments"]["development"]["mappings"])
    assert body["missing_secrets"] == []


def test_healthz_is_open(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}


@pytest.mark.slow
def test_admin_token_rules_under_gunicorn(tmp_path, served):
    assert served.get(f"{DEV}/logs").status_code == 200
    assert served.get(f"{DEV}/logs", headers=basic(ADMIN_TOKEN)).status_code == 200
    wrong = served.get(f"{DEV}/logs", headers=admin("nope"))
    assert wrong.status_code == 401 and "nope" not in wrong.text and ADMIN_TOKEN not in wrong.text
    page = served.get(DEV, headers={})
    assert page.status_code == 401 and page.headers["WWW-Authenticate"].startswith("Basic")
    config = write_config(tmp_path / "clay.json", receiver_config())
    closed = Served(
        config, f"sqlite:///{tmp_path / 'e.sqlite'}", workers=1, admin_token=None, log=tmp_path / "log"
    )
    try:
        for headers in ({}, admin(), admin("")):
            r = closed.get(f"{DEV}/logs", headers=headers)
            assert r.status_code == 403 and "WORKBENCH_ADMIN_TOKEN" in r.json()["error"]
        assert closed.get("/healthz", headers={}).ok
    finally:
        closed.stop()


def test_factory_reads_its_settings_from_the_environment(monkeypatch, config_path, store_url):
    from workbench.receiver import create_app

    monkeypatch.setenv("WORKBENCH_CONFIG_PATHS", str(config_path))
    monkeypatch.setenv("WORKBENCH_STORE_URL", store_url)
    monkeypatch.setenv("WORKBENCH_ADMIN_TOKEN", ADMIN_TOKEN)
    for name, value in {
        "CLAY_SIGNING_SECRET_DEVELOPMENT": SECRET,
        "CLAY_SIGNING_SECRET_DEVELOPMENT_NEXT": "",
    }.items():
        monkeypatch.setenv(name, value)
    client = create_app().test_client()
    reply = post(client, lead())
    assert reply.status_code == 200
    assert [e["id"] for e in client.get(f"{DEV}/logs", headers=admin()).get_json()["events"]] == [
        reply.get_json()["id"]
    ]

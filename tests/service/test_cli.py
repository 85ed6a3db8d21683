"""`workbench replay` and `workbench prune` on a real store file."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from tests.service.conftest import lead, post
from workbench.cli import main
from workbench.engine import SourceEvent, utcnow


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_replay_by_id_after_knock_recovers(service, store, store_url, config_path, fake_knock, monkeypatch):
    monkeypatch.setenv("KNOCK_API_KEY", fake_knock.api_key)
    fake_knock.fail(400, path="/v1/workflows", body={"message": "workflow new-lead does not exist"})
    failed = post(service, lead(row_id="r1"), env="knock").body["id"]
    code, out = run("replay", failed, "--store", store_url, "--config", str(config_path))
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0] == f"{failed}: failed -> processed"
    assert json.loads(lines[-1]) == {"replayed": 1, "statuses": {"processed": 1}}
    assert len(fake_knock.runs()) == 1
    assert len(fake_knock.requests_to("/v1/users")) == 1


def test_replay_by_status_reports_what_still_fails(service, store, store_url, config_path):
    ids = [post(service, lead(email="")).body["id"] for _ in range(2)]
    post(service, lead())
    code, out = run(
        "replay", "--status", "failed", "--source", "clay", "--env", "development",
        "--store", store_url, "--config", str(config_path),
    )  # fmt: skip
    assert code == 0, out
    lines = out.strip().splitlines()
    assert sorted(lines[:2]) == sorted(  # one received_at, so the order between them is the ids'
        f"{i}: failed -> failed (users_identify: param `id`: path `body.email` resolved to nothing)"
        for i in ids
    )
    assert json.loads(lines[-1]) == {"replayed": 2, "statuses": {"failed": 2}}


def test_replay_usage_errors(store_url, config_path):
    code, out = run("replay", "--store", store_url, "--config", str(config_path))
    assert code == 2 and "give EVENT_IDs or --status" in out
    code, out = run("replay", "evt_1", "--env", "x", "--store", store_url, "--config", str(config_path))
    assert code == 2 and "go with --status" in out
    code, out = run("replay", "evt_missing", "--store", store_url, "--config", str(config_path))
    assert code == 1
    assert "evt_missing: not in the log" in out
    assert json.loads(out.strip().splitlines()[-1]) == {"replayed": 0, "statuses": {"not_found": 1}}


def test_prune_keeps_recent_events(store, store_url):
    old = store.record_received(
        SourceEvent(b"{}", received_at=utcnow() - timedelta(days=40)), "clay", "development"
    )
    new = store.record_received(
        SourceEvent(b"{}", received_at=utcnow() - timedelta(days=2)), "clay", "development"
    )
    code, out = run("prune", "--store", store_url)
    assert (code, json.loads(out)) == (0, {"deleted_events": 1, "days": 30.0})
    assert store.get_event(old) is None and store.get_event(new) is not None
    code, out = run("prune", "--store", store_url, "--days", "1")
    assert json.loads(out)["deleted_events"] == 1


def test_replay_goes_on_past_an_event_it_cannot_replay(service, store, store_url, config_path, tmp_path):
    failed = post(service, lead(email="")).body["id"]
    other = store.record_received(SourceEvent(b"{}"), "hubspot", "production")
    code, out = run("replay", other, failed, "--store", store_url, "--config", str(config_path))
    assert code == 1, out  # the rest was replayed; the exit code says one was not
    assert f"{other}: not replayed: no source `hubspot`" in out
    assert json.loads(out.strip().splitlines()[-1]) == {"replayed": 1, "statuses": {"error": 1, "failed": 1}}

"""`run_in_background`: the same app on a thread of this process, as a notebook starts it."""

from __future__ import annotations

import time

import pytest
import requests

from workbench.receiver import run_in_background

from .conftest import ADMIN_TOKEN, ENVIRON, Served, admin, auth, lead, receiver_config, write_config


def test_serves_until_stopped(config_path, store_url):
    handle = run_in_background(
        config_paths=[config_path], store_url=store_url, ENVIRON=ENVIRON, ADMIN_TOKEN=ADMIN_TOKEN
    )
    try:
        assert handle.url.startswith("http://127.0.0.1:") and not handle.url.endswith(":0")
        r = requests.post(handle.source_url(), json=lead(), headers=auth(), timeout=30)
        assert (r.status_code, r.json()["status"]) == (200, "processed")
        logs = requests.get(f"{handle.source_url()}/logs", headers=admin(), timeout=30).json()
        assert [e["id"] for e in logs["events"]] == [r.json()["id"]]
    finally:
        handle.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{handle.url}/healthz", timeout=5)


@pytest.mark.slow
def test_retry_worker_settles_queued_actions(config_path, store_url):
    """A row queued because Knock was unreachable is applied by the retry loop once the sink works."""
    handle = run_in_background(
        config_paths=[config_path],
        store_url=store_url,
        ENVIRON=ENVIRON,
        ADMIN_TOKEN=ADMIN_TOKEN,
        RELOAD_INTERVAL=0,
        retry_interval=0.5,
    )
    try:
        url = handle.source_url("clay", "flaky")
        reply = requests.post(url, json=lead(), headers=auth(), timeout=60).json()
        assert reply["status"] == "queued"
        raw = receiver_config()
        raw["environments"]["flaky"]["sink"] = "local"  # the sink "recovers"
        write_config(config_path, raw)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            entry = requests.get(f"{url}/logs/{reply['id']}", headers=admin(), timeout=30).json()
            if entry["status"] != "queued":
                break
            time.sleep(0.5)
        assert entry["status"] == "processed", entry
        assert entry["actions"][0]["status"] == "success"
    finally:
        handle.stop()


@pytest.mark.slow
def test_gunicorn_workers_retry_queued_actions(tmp_path):
    """`workbench serve` runs the retry loop in its workers: no request needed to settle a queued row."""
    config = write_config(tmp_path / "clay.json", receiver_config())
    server = Served(config, f"sqlite:///{tmp_path / 'events.sqlite'}", workers=2, log=tmp_path / "serve.log")
    try:
        reply = server.post("/sources/clay/flaky", lead(), auth()).json()
        assert reply["status"] == "queued"
        raw = receiver_config()
        raw["environments"]["flaky"]["sink"] = "local"
        write_config(config, raw)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            entry = server.get(f"/sources/clay/flaky/logs/{reply['id']}").json()
            if entry["status"] != "queued":
                break
            time.sleep(0.5)
        assert entry["status"] == "processed", entry
        assert [a["status"] for a in entry["actions"]] == ["success"]
        assert entry["actions"][0]["attempts"] == 2
    finally:
        server.stop()

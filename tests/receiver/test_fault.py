"""The receiver SIGKILLed under load: on restart, every answered row is in the log and no row
was applied twice. Rows answered but not yet logged by write-behind are logged by the restart."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
import requests

from .conftest import Served, auth, lead, receiver_config, write_config

pytestmark = pytest.mark.slow
DEV = "/sources/clay/development"


def fault_config() -> dict:
    """Every lead also triggers a workflow, so a row applied twice would show as two runs."""
    raw = receiver_config()
    raw["environments"]["development"]["mappings"].append(
        {
            "event": "lead.enriched",
            "action": "workflows_trigger",
            "params": {
                "key": {"value": "lead-alert"},
                "recipients": {"value": ["sales-team"]},
                "data": "body",
            },
        }
    )
    return raw


def test_sigkill_mid_load_loses_nothing_answered_and_applies_nothing_twice(tmp_path):
    config = write_config(tmp_path / "clay.json", fault_config())
    store_url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    server = Served(config, store_url, workers=2, log=tmp_path / "first.log")

    answered: dict[str, dict] = {}  # row email -> the 2xx reply
    unanswered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            email = f"c{n}-{i}@acme.com"
            i += 1
            try:
                r = requests.post(
                    server.url + DEV, data=json.dumps(lead(email=email)), headers=auth(), timeout=30
                )
            except requests.RequestException:
                with lock:
                    unanswered.append(email)
                continue
            with lock:
                if 200 <= r.status_code < 300:
                    answered[email] = r.json()
                else:
                    unanswered.append(email)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(answered) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # mid-load: requests are in flight in both workers
    stop.set()
    for t in threads:
        t.join(60)
    assert len(answered) >= 60

    restarted = Served(config, store_url, workers=2, log=tmp_path / "second.log")
    try:
        # The retry loops of both workers log what was answered but cut short: poll until they have.
        deadline = time.monotonic() + 120
        while True:
            events = restarted.get(f"{DEV}/logs?limit=1000").json()["events"]
            by_id = {e["id"]: e for e in events}
            logged = all(by_id.get(r["id"], {}).get("status") == "processed" for r in answered.values())
            if logged or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        entries = [restarted.get(f"{DEV}/logs/{e['id']}").json() for e in events]
    finally:
        restarted.stop()

    # Every row that got a 2xx is in the log, with the status it was answered with.
    for email, reply in answered.items():
        assert reply["status"] == "processed"
        assert reply["id"] in by_id, f"{email} was answered {reply['id']} but is not in the log"
        assert by_id[reply["id"]]["status"] == "processed"

    # No row appears twice, and no action ran twice.
    rows = Counter(json.loads(entry["body"])["email"] for entry in entries)
    assert [email for email, n in rows.items() if n > 1] == []
    assert set(rows) <= set(answered) | set(unanswered)
    for entry in entries:
        assert all(a.get("attempts", 1) <= 1 for a in entry["actions"] if a["status"] == "success"), entry
    runs = Counter(run["email"] for run in workflow_runs(store_url))
    assert [email for email, n in runs.items() if n > 1] == []
    missing = [email for email in answered if runs[email] != 1]
    assert missing == [], f"answered rows without their workflow run: {missing[:5]}"


def workflow_runs(store_url: str) -> list[dict]:
    """The local sink's workflow runs, read straight from its table."""
    from sqlalchemy import select

    from workbench.store import Store, local_workflow_runs

    store = Store(store_url)
    with store.engine.connect() as conn:
        rows = conn.execute(select(local_workflow_runs.c.data)).all()
    store.engine.dispose()
    return [row.data for row in rows]


def logged_ids(store_url: str) -> set[str]:
    """Event ids in the log, read straight from its table (no receiver waits for pending rows)."""
    from sqlalchemy import select

    from workbench.store import Store, events

    store = Store(store_url)
    with store.engine.connect() as conn:
        found = set(conn.execute(select(events.c.id)).scalars())
    store.engine.dispose()
    return found


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
def test_rows_answered_but_not_yet_logged_are_logged_after_a_kill_or_a_stop(tmp_path, stop):
    config = write_config(tmp_path / "clay.json", fault_config())
    store_url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    # Batches wait a minute: every answered row is still only in a worker's journal.
    server = Served(config, store_url, workers=2, log=tmp_path / "first.log", args=["--batch-pause", "60"])
    answered = []
    try:
        for n in range(8):
            r = requests.post(
                server.url + DEV, data=json.dumps(lead(email=f"k{n}@acme.com")), headers=auth(), timeout=30
            )
            assert r.status_code == 200, r.text
            answered.append(r.json())
        assert logged_ids(store_url) == set()
    finally:
        server.kill() if stop == "SIGKILL" else server.stop()
    journal = tmp_path / "events.sqlite.receiver-journal"
    if stop == "SIGTERM":  # the workers logged what they answered as they stopped
        assert logged_ids(store_url) == {r["id"] for r in answered}
        assert list(journal.iterdir()) == []
        return
    assert logged_ids(store_url) == set() and list(journal.glob("*.log"))
    restarted = Served(config, store_url, workers=2, log=tmp_path / "second.log")
    try:
        assert "Logged 8 answered rows" in restarted.log_path.read_text()
        for reply in answered:
            entry = restarted.get(f"{DEV}/logs/{reply['id']}").json()
            assert (
                entry["status"] == "processed" and [a["status"] for a in entry["actions"]] == ["success"] * 2
            )
    finally:
        restarted.stop()
    runs = Counter(run["email"] for run in workflow_runs(store_url))
    assert sorted(runs) == sorted(f"k{n}@acme.com" for n in range(8)) and set(runs.values()) == {1}
    assert list(journal.iterdir()) == []

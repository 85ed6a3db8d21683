"""The retry worker runs in every receiver at once: a queued action is retried by exactly one of them."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from workbench.config import ConfigSet
from workbench.engine import utcnow
from workbench.service import SourceService
from workbench.store import Store

from .conftest import ENVIRON, SECRET, WORKFLOW, row, write_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
EVENTS = 60


def _retry_until_idle(config_path: str, store_url: str, start, results) -> None:
    """One receiver's retry loop, compressed: passes one after another until two find nothing."""
    store = Store(store_url)
    service = SourceService(ConfigSet([config_path]), store, environ=ENVIRON)
    start.wait()
    retried, idle = 0, 0
    try:
        while idle < 2:
            # An hour ahead: every backoff has elapsed; small batches make the two interleave.
            done = service.retry_due(utcnow() + timedelta(hours=1), limit=3)
            idle = idle + 1 if not done else 0
            retried += done
        results.put(("ok", retried))
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        store.close()


def test_two_processes_retrying_at_once_apply_each_action_once(tmp_path, postgres_url, fake_knock):
    config = write_config(tmp_path / "clay.json", fake_knock.url)
    store = Store(postgres_url)
    service = SourceService(ConfigSet([config]), store, environ=ENVIRON)
    # Knock is down for the live requests: every trigger is queued.
    fake_knock.fail(503, times=EVENTS, path=f"/v1/workflows/{WORKFLOW}")
    ids = []
    for _ in range(EVENTS):
        body = row(uuid.uuid4().hex)
        headers = {"authorization": f"Bearer {SECRET}", "content-type": "application/json"}
        reply = service.receive("clay", "knock", headers, json.dumps(body).encode())
        assert reply.http_status == 202, reply.body
        ids.append(reply.body["id"])
    failed_first = len(fake_knock.requests_to(f"/v1/workflows/{WORKFLOW}"))
    assert failed_first == EVENTS

    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_retry_until_idle, args=(str(config), postgres_url, start, results))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = [results.get(timeout=180) for _ in procs]
    for proc in procs:
        proc.join(60)
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    retried = [count for _, count in outcomes]

    triggers = fake_knock.requests_to(f"/v1/workflows/{WORKFLOW}")[failed_first:]
    sent = Counter(r.idempotency_key for r in triggers)
    twice = {key: n for key, n in sent.items() if n > 1}
    print(
        f"\nretry workers: {EVENTS} queued events, retried {' + '.join(map(str, retried))} by the two "
        f"processes, triggers sent {len(triggers)}, sent twice {len(twice)}"
    )
    assert sum(retried) == EVENTS  # each event retried by exactly one process
    assert not twice
    assert len(sent) == EVENTS and all(r.status == 200 for r in triggers)
    for event_id in ids:
        entry = store.get_event(event_id)
        assert entry["status"] == "processed", entry
        assert [a["status"] for a in entry["actions"]] == ["success", "success"]
    store.close()

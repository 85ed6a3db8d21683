"""Two receivers on one PostgreSQL under a mixed load, with one receiver SIGKILLed and restarted
and the database restarted mid-load. Afterwards nothing answered 2xx is missing from the log and
no row ran twice."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from workbench.config import ConfigSet
from workbench.engine import utcnow
from workbench.service import SourceService
from workbench.store import Store, events, local_workflow_runs

from .conftest import ENVIRON, INGEST, SECRET, WORKFLOW, Instance, row, write_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LOAD_SECONDS = 24
CLIENTS = 6
KILL_AT, DATABASE_RESTART_AT = 6, 14  # seconds into the load
TIMEOUT = (3, 20)  # connect, read: a request that hangs fails the test instead of stalling it


@dataclass
class Sent:
    kind: str  # valid, duplicate, invalid, wrong_secret
    row_id: str | None
    instance: str
    code: int | None = None  # None: no answer (connection refused or reset)
    body: dict | None = None
    failure: str | None = None
    at: float = 0.0  # when the answer (or the failure) came


@dataclass
class Load:
    instances: list[Instance]
    rng: random.Random = field(default_factory=lambda: random.Random(20260301))
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, kind: str, instance: Instance, row_id: str | None, body: bytes, secret: str) -> None:
        record = Sent(kind, row_id, instance.name)
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        try:
            response = requests.post(instance.url + INGEST, data=body, headers=headers, timeout=TIMEOUT)
            record.code = response.status_code
            try:
                record.body = response.json()
            except ValueError:
                record.failure = f"not JSON: {response.text[:200]!r}"
        except requests.Timeout as exc:
            record.failure = f"timeout: {exc}"
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            # No answer: the instance is down (killed, or not restarted yet), or it was killed
            # between the status line and the end of the body, so the client cannot know the outcome.
            pass
        record.at = time.monotonic()
        with self.lock:
            self.sent.append(record)

    def one(self) -> None:
        """One step of a client: a valid row, a duplicate to both receivers at once, or a bad request."""
        with self.lock:
            draw, pick = self.rng.random(), self.rng.choice(self.instances)
        row_id = uuid.uuid4().hex
        body = json.dumps(row(row_id)).encode()
        if draw < 0.55:
            self.post("valid", pick, row_id, body, SECRET)
        elif draw < 0.80:
            other = threading.Thread(
                target=self.post, args=("duplicate", self.instances[1], row_id, body, SECRET)
            )
            other.start()
            self.post("duplicate", self.instances[0], row_id, body, SECRET)
            other.join()
        elif draw < 0.90:
            self.post("invalid", pick, None, b'{"event": "lead.enriched", "email": ', SECRET)
        else:
            self.post("wrong_secret", pick, row_id, body, "whsec-wrong")


def run_load(load: Load, until: list[float]) -> None:
    while time.monotonic() < until[0]:
        load.one()


def test_two_receivers_survive_a_killed_receiver_and_a_database_restart(tmp_path, postgres_server, capsys):
    url = postgres_server.create_database()
    config = write_config(tmp_path / "clay.json")
    Store(url).close()  # migrate once, as `workbench serve` does before its workers start
    instances = [Instance(name, config, url, tmp_path) for name in ("a", "b")]
    load = Load(instances)
    faults = []
    try:
        start = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            until = [start + LOAD_SECONDS]  # moved on below if the faults took longer than planned
            clients = [pool.submit(run_load, load, until) for _ in range(CLIENTS)]
            time.sleep(max(0.0, start + KILL_AT - time.monotonic()))
            instances[1].kill()
            faults.append("receiver b SIGKILLed (and restarted)")
            instances[1].start()
            time.sleep(max(0.0, start + DATABASE_RESTART_AT - time.monotonic()))
            postgres_server.restart()
            faults.append("PostgreSQL restarted")
            back_at = time.monotonic()
            until[0] = max(until[0], back_at + 5)
            for client in clients:
                client.result()
    finally:
        for instance in instances:
            instance.stop()

    # What the retry worker does once the database is back and the stalled-event delay has passed.
    store = Store(url)
    service = SourceService(ConfigSet([config]), store, environ=ENVIRON)
    later = utcnow() + timedelta(minutes=11)
    retried = 0
    while done := service.retry_due(later):
        retried += done
    with store.engine.connect() as conn:
        logged = {r.id: r.status for r in conn.execute(select(events.c.id, events.c.status))}
        runs = Counter(
            (r.data or {}).get("row_id")
            for r in conn.execute(
                select(local_workflow_runs.c.data).where(local_workflow_runs.c.workflow == WORKFLOW)
            )
        )
    store.close()

    sent = load.sent
    answered = [s for s in sent if s.code is not None]
    ok = [s for s in answered if 200 <= s.code < 300]
    unavailable = [s for s in answered if s.code == 503]
    hung = [s for s in sent if s.failure]
    unexpected = [
        s
        for s in answered
        if (s.code, s.kind)
        not in {(200, "valid"), (200, "duplicate"), (400, "invalid"), (401, "wrong_secret")}
        and s.code != 503
    ]
    lost = [s for s in ok if s.body.get("id") not in logged]
    misreported = [s for s in ok if s.body.get("id") in logged and logged[s.body["id"]] != s.body["status"]]
    executed_twice = {row_id: n for row_id, n in runs.items() if n > 1}
    answered_rows = {s.row_id for s in ok}
    not_executed = sorted(r for r in answered_rows if runs[r] != 1)
    suppressed = sum(1 for s in ok if s.body["status"] == "idempotent")
    left = Counter(status for status in logged.values() if status in ("received", "queued"))
    pairs = Counter(s.row_id for s in sent if s.kind == "duplicate")

    figures = (
        "\nreliability, two receivers on one PostgreSQL:"
        f"\n  requests sent        {len(sent)} ({dict(Counter(s.kind for s in sent))})"
        f"\n  answered 2xx         {len(ok)}"
        f"\n  answered 503         {len(unavailable)}"
        f"\n  other answers        {dict(Counter((s.kind, s.code) for s in answered if not 200 <= s.code < 300 and s.code != 503))}"
        f"\n  no answer            {sum(1 for s in sent if s.code is None and not s.failure)} (receiver down)"
        f"\n  hung / not JSON      {len(hung)}"
        f"\n  duplicates suppressed {suppressed} (of {len(pairs)} rows sent to both receivers at once)"
        f"\n  faults injected      {len(faults)}: {', '.join(faults)}"
        f"\n  retried afterwards   {retried}"
        f"\n  entries lost         {len(lost)}"
        f"\n  actions executed twice {len(executed_twice)}"
        f"\n  left received/queued {sum(left.values())}"
    )
    with capsys.disabled():  # the figures belong in every run's output, not only with -s
        print(figures)
    assert len(faults) == 2
    # Both receivers recovered on their own once the database was back.
    assert {s.instance for s in ok if s.at > back_at + 1} == {"a", "b"}
    assert ok and unavailable, "the load must see both successes and the database outage"
    assert not hung, hung[:5]
    assert not unexpected, unexpected[:5]
    assert all(s.body and s.body.get("status") == "unavailable" and s.body.get("error") for s in unavailable)
    assert not lost, lost[:5]
    assert not misreported, misreported[:5]
    assert not executed_twice, executed_twice
    assert not not_executed, not_executed[:5]
    assert suppressed > 0
    assert not left, left

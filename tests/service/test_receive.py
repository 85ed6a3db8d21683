"""SourceService.receive: the response of DESIGN.md's table, logging first, deduplication."""

from __future__ import annotations

import json
import multiprocessing
import threading

import pytest
from sqlalchemy import func, select

from tests.service.conftest import ENVIRON, NEXT_SECRET, lead, post
from workbench.config import ConfigSet
from workbench.errors import NotFound, VerificationError
from workbench.service import SourceService
from workbench.sinks.local import LocalSink
from workbench.store import Store, events, local_users, local_workflow_runs


def count(store, table, *where):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


@pytest.mark.parametrize(
    "body, status, http",
    [
        (lead(), "processed", 200),
        (lead(event="lead.unknown"), "no_mapping", 200),
        (lead(event="lead.high_intent", icp_score="50"), "processed", 200),
        (lead(email=""), "failed", 422),
        (b'{"event": "lead.enriched", "email": }', "invalid", 400),
        (b'["not", "an", "object"]', "invalid", 400),
        (b'{"email": "jane@acme.com"}', "invalid", 400),
        (b'{"event": "lead.enriched", "name": "Jos\xe9"}', "invalid", 400),
        (
            b'{"event": "lead.enriched", "email": "a@b.co", "note": "tab\there\nand line"}',
            "processed",
            200,
        ),
    ],
    ids=[
        "processed",
        "no_mapping",
        "skipped",
        "failed",
        "bad-json",
        "array",
        "no-event",
        "not-utf8",
        "controls",
    ],
)
def test_status_and_http_code_follow_the_table(service, store, body, status, http):
    reply = post(service, body)
    assert (reply.body["status"], reply.http_status) == (status, http)
    assert reply.body["id"].startswith("evt_")
    entry = store.get_event(reply.body["id"])
    assert entry["status"] == status
    assert entry["body"] == (body if isinstance(body, bytes) else json.dumps(body).encode()).decode(
        "utf-8", "replace"
    )
    assert [a["status"] for a in entry["actions"]] == [a["status"] for a in reply.body["actions"]]
    if status in ("invalid", "no_mapping"):
        assert reply.body["error"]


def test_processed_reply_has_the_actions_in_full(service, store):
    reply = post(service, lead())
    assert list(reply.body) == ["id", "status", "event", "actions"]
    (action,) = reply.body["actions"]
    assert action["action"] == "users_identify"
    assert action["status"] == "success"
    assert action["payload"]["id"] == "jane@acme.com"
    assert action["payload"]["properties"] == lead()
    assert action["result"] == {"id": "jane@acme.com"}
    assert count(store, local_users) == 1


def test_failed_action_names_the_parameter_and_path(service):
    reply = post(service, lead(email=""))
    (action,) = reply.body["actions"]
    assert action["error"] == "param `id`: path `body.email` resolved to nothing"


def test_condition_skips_the_action(service):
    reply = post(service, lead(event="lead.high_intent", icp_score="50"))
    (action,) = reply.body["actions"]
    assert action["status"] == "skipped"
    assert "condition not met" in action["result"]["reason"]


def test_unverified_request_is_refused_and_not_stored(service, store):
    for secret in ("wrong", ""):
        with pytest.raises(VerificationError) as caught:
            post(service, lead(), secret=secret)
        assert "wrong" not in str(caught.value)
    with pytest.raises(VerificationError):
        service.receive("clay", "development", {}, json.dumps(lead()).encode())
    assert count(store, events) == 0


def test_rotated_secrets_are_both_accepted(service):
    assert post(service, lead(), secret=NEXT_SECRET).http_status == 200


def test_unknown_source_or_environment_is_not_found(service):
    with pytest.raises(NotFound, match="no source `hubspot`"):
        post(service, lead(), source="hubspot")
    with pytest.raises(NotFound, match="no environment `staging`"):
        post(service, lead(), env="staging")


def test_authorization_is_never_stored(service, store):
    reply = post(service, lead(), headers={"X-Clay-Table-Id": "t_42"})
    entry = store.get_event(reply.body["id"])
    assert "authorization" not in entry["headers"]
    assert entry["headers"]["x-clay-table-id"] == "t_42"
    with store.engine.connect() as conn:
        dumped = json.dumps([list(r) for r in conn.execute(select(events))], default=str)
    assert "whsec" not in dumped


def test_duplicate_within_the_window_runs_nothing(service, store, clock):
    first = post(service, lead(row_id="r1"), env="dedupe")
    again = post(service, lead(row_id="r1"), env="dedupe")
    assert first.body["status"] == "processed"
    assert (again.body["status"], again.http_status, again.body["actions"]) == ("idempotent", 200, [])
    assert '"r1"' in again.body["error"]
    assert store.get_event(again.body["id"])["status"] == "idempotent"
    assert count(store, local_workflow_runs) == 1
    clock.advance(25 * 3600)
    assert post(service, lead(row_id="r1"), env="dedupe").body["status"] == "processed"
    assert count(store, local_workflow_runs) == 2


def test_event_without_a_key_is_processed_and_the_log_says_why(service, store):
    reply = post(service, lead(), env="dedupe")
    assert reply.body["status"] == "processed"
    assert "resolved to nothing" in reply.body["idempotency"]
    assert "resolved to nothing" in store.get_event(reply.body["id"])["idempotency_note"]


def test_concurrent_duplicates_in_threads_execute_once(service, store):
    barrier = threading.Barrier(6)
    replies = []

    def send():
        barrier.wait()
        replies.append(post(service, lead(row_id="r-threads"), env="dedupe").body["status"])

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(replies) == ["idempotent"] * 5 + ["processed"]
    assert count(store, local_workflow_runs) == 1


def _send_from_process(config_path, store_url, start, results):
    store = Store(store_url)
    service = SourceService(ConfigSet([config_path]), store, environ=ENVIRON)
    start.wait()
    statuses = [post(service, lead(row_id=f"r{i}"), env="dedupe").body["status"] for i in range(10)]
    results.put(statuses)
    store.close()


def test_concurrent_duplicates_in_two_processes_execute_once(config_path, store_url, store):
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_send_from_process, args=(config_path, store_url, start, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    statuses = [s for _ in procs for s in results.get(timeout=120)]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(statuses) == ["idempotent"] * 10 + ["processed"] * 10
    assert count(store, local_workflow_runs) == 10
    assert count(store, events) == 20


class CrashingSink(LocalSink):
    """A local sink with a bug in its trigger, to show what a crash mid-event leaves behind."""

    def _workflows_trigger(self, conn, payload, request):
        raise RuntimeError("bug")

    def bind(self, conn):
        return CrashingSink(self.store, conn, self.clock)


def test_crash_while_processing_keeps_the_event_for_a_replay(service, store, monkeypatch):
    real = service.sink_for
    monkeypatch.setattr(service, "sink_for", lambda env: CrashingSink(store))
    reply = post(service, lead(row_id="r1"), env="dedupe")
    assert reply.http_status == 500
    assert reply.body["status"] == "error"
    assert reply.body["id"] in reply.body["error"]
    entry = store.get_event(reply.body["id"])
    assert entry["status"] == "failed"
    assert "RuntimeError" in entry["error"]
    # The local sink's writes rolled back with the action log, and the key was not remembered.
    assert count(store, local_users) == 0
    monkeypatch.setattr(service, "sink_for", real)
    replayed = service.replay(reply.body["id"])
    assert replayed["status"] == "processed"
    assert count(store, local_users) == 1
    assert count(store, local_workflow_runs) == 1
    assert post(service, lead(row_id="r1"), env="dedupe").body["status"] == "idempotent"


def test_a_row_sent_again_after_a_failure_runs_only_what_did_not_succeed(service, store):
    # The identify needs the email; the trigger does not, and succeeds the first time.
    first = post(service, lead(row_id="r1", email=""), env="dedupe")
    assert first.http_status == 422
    assert [a["status"] for a in first.body["actions"]] == ["failed", "success"]
    assert (count(store, local_users), count(store, local_workflow_runs)) == (0, 1)
    again = post(service, lead(row_id="r1"), env="dedupe")
    assert (again.http_status, again.body["status"]) == (200, "processed")
    assert [a["status"] for a in again.body["actions"]] == ["success", "success"]
    # The trigger's success is carried over, not run a second time.
    assert again.body["actions"][1]["result"] == first.body["actions"][1]["result"]
    assert (count(store, local_users), count(store, local_workflow_runs)) == (1, 1)
    assert store.get_event(again.body["id"])["actions"][1]["status"] == "success"
    assert post(service, lead(row_id="r1"), env="dedupe").body["status"] == "idempotent"
    # Another key runs everything.
    assert post(service, lead(row_id="r2"), env="dedupe").body["status"] == "processed"
    assert count(store, local_workflow_runs) == 2


def test_a_failure_carries_earlier_successes_into_the_next_attempt(service, store):
    post(service, lead(row_id="r1", email=""), env="dedupe")
    second = post(service, lead(row_id="r1", email=""), env="dedupe")  # still missing: fails again
    assert [a["status"] for a in second.body["actions"]] == ["failed", "success"]
    assert count(store, local_workflow_runs) == 1
    third = post(service, lead(row_id="r1"), env="dedupe")
    assert third.body["status"] == "processed"
    assert (count(store, local_users), count(store, local_workflow_runs)) == (1, 1)


def test_a_row_sent_again_to_knock_does_not_repeat_an_accepted_call(service, fake_knock):
    fake_knock.fail(422, path="/v1/workflows", body={"message": "workflow new-lead is not committed"})
    first = post(service, lead(row_id="r1"), env="knock")
    assert first.http_status == 422
    assert [a["status"] for a in first.body["actions"]] == ["success", "failed"]
    again = post(service, lead(row_id="r1"), env="knock")
    assert again.body["status"] == "processed"
    assert len(fake_knock.requests_to("/v1/users/", "PUT")) == 1  # identified once
    assert len(fake_knock.requests_to("/v1/workflows/new-lead/trigger", "POST")) == 2
    assert len(fake_knock.runs("new-lead")) == 1

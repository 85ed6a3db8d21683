"""Write-behind: a row journaled, answered, then logged in a batch; the answer and the log are the
ordinary path's, pending rows are read by every process, and a dead process's rows are logged once."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time

import pytest
from sqlalchemy import func, select

from tests.service.conftest import ENVIRON, SECRET, TRIGGER, lead, post, service_config
from workbench.config import ConfigSet
from workbench.service import SourceService
from workbench.store import Store, events, idempotency_keys, local_users, local_workflow_runs
from workbench.store import journal as journals
from workbench.store.claims import ClaimArbiter, Holder
from workbench.writebehind import WriteBehind, journal_folder, with_write_behind

LONG = 60.0  # a pause no test waits out: rows stay pending until something settles them


def count(store, table, *where):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def behind(service: SourceService, pause: float = LONG) -> WriteBehind:
    wrapped = with_write_behind(service, pause)
    assert isinstance(wrapped, WriteBehind)
    return wrapped


@pytest.fixture
def wb_service(config_path, store, clock):
    service = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock))
    yield service
    service.close()


def comparable(entry: dict) -> dict:
    """A log entry without what differs between two runs of one row (its id, its times)."""
    out = {k: v for k, v in entry.items() if k not in ("id", "received_at", "updated_at")}
    out["actions"] = [
        {k: v for k, v in a.items() if k not in ("id", "event_id", "updated_at", "next_attempt_at")}
        for a in entry["actions"]
    ]
    return out


def run_ids(reply: dict) -> list[str]:
    return [
        a["result"]["workflow_run_id"]
        for a in reply["actions"]
        if "workflow_run_id" in (a.get("result") or {})
    ]


def without_run_ids(actions: list[dict]) -> None:
    """A run id (and a trigger's key) derives from the event id, which differs between two runs."""
    for a in actions:
        if "workflow_run_id" in (a.get("result") or {}):
            a["result"] = "run id"
            a.pop("request_key", None)


BODIES = {
    "processed": lead(),
    "no_mapping": lead(event="lead.unknown"),
    "skipped": lead(event="lead.high_intent", icp_score="50"),
    "trigger": lead(event="lead.high_intent", icp_score="91"),
    "failed": lead(email=""),
    "bad-json": b'{"event": "lead.enriched", "email": }',
    "not-utf8": b'{"event": "lead.enriched", "name": "Jos\xe9"}',
    "controls": b'{"event": "lead.enriched", "email": "a@b.co", "note": "tab\there\nand line"}',
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_answer_and_log_are_the_ordinary_paths(config_path, tmp_path, clock, body):
    ordinary_store, behind_store = (Store(f"sqlite:///{tmp_path / name}.sqlite") for name in ("a", "b"))
    ordinary = SourceService(ConfigSet([config_path]), ordinary_store, environ=ENVIRON, clock=clock)
    deferred = behind(SourceService(ConfigSet([config_path]), behind_store, environ=ENVIRON, clock=clock))
    wb = deferred
    try:
        expected, got = post(ordinary, body), post(deferred, body)
        assert behind_store.get_event(got.body["id"]) is None  # answered, not yet logged: deferred
        deferred.settle()
        logged_ordinary = comparable(ordinary_store.get_event(expected.body["id"]))
        logged_behind = comparable(behind_store.get_event(got.body["id"]))
        assert run_ids(logged_behind) == run_ids(got.body)  # the run answered is the run logged
        for actions in (expected.body["actions"], got.body["actions"]):
            without_run_ids(actions)
        for entry in (logged_ordinary, logged_behind):
            without_run_ids(entry["actions"])
        assert got.http_status == expected.http_status
        assert {**got.body, "id": None} == {**expected.body, "id": None}
        assert logged_behind == logged_ordinary
    finally:
        wb.close()
        ordinary_store.close()
        behind_store.close()


def test_rows_are_logged_in_one_batch_after_their_answers_with_the_sinks_writes(wb_service, store):
    replies = [post(wb_service, lead(email=f"u{n}@acme.com")).body for n in range(3)]
    trigger = post(wb_service, lead(event="lead.high_intent", icp_score="95", email="hot@acme.com")).body
    assert [r["status"] for r in replies + [trigger]] == ["processed"] * 4
    (path,) = journals.journal_files(journal_folder(store))
    assert path.stat().st_size > 0
    assert SECRET.encode() not in path.read_bytes()  # Authorization is not journaled either
    assert [e.event_id for e in journals.read_entries(path)] == [r["id"] for r in replies + [trigger]]
    assert count(store, events) == 0 and count(store, local_users) == 0

    wb_service.settle()
    assert count(store, events) == 4 and count(store, local_users) == 3
    for reply in replies + [trigger]:
        assert store.get_event(reply["id"])["status"] == "processed"
    # The run id answered is the run written.
    with store.engine.connect() as conn:
        runs = conn.execute(select(local_workflow_runs.c.trigger_id, local_workflow_runs.c.event_id)).all()
    assert {(r.trigger_id, r.event_id) for r in runs} == {(run_ids(trigger)[0], trigger["id"])}
    assert path.stat().st_size == 0  # all of it applied: emptied


def test_a_row_whose_answer_reads_the_store_waits_for_pending_rows_first(tmp_path, fake_knock, clock):
    raw = service_config(fake_knock.url)
    raw["environments"]["development"]["mappings"].append(
        {"event": "lead.deleted", "action": "users_delete", "params": {"id": "body.email"}}
    )
    config_path = tmp_path / "clay.json"
    config_path.write_text(json.dumps(raw))
    store = Store(f"sqlite:///{tmp_path / 'events.sqlite'}")
    service = wb = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock))
    try:
        identified = post(service, lead(email="gone@acme.com")).body
        assert store.get_event(identified["id"]) is None
        deleted = post(service, {"event": "lead.deleted", "email": "gone@acme.com"}).body
        # The delete ran after the identify answered before it was written: it found the user.
        assert deleted["actions"][0]["result"] == {"id": "gone@acme.com", "deleted": True}
        assert store.get_event(deleted["id"])["status"] == "processed"  # logged before answering
        assert store.get_event(identified["id"])["status"] == "processed"
        assert count(store, local_users) == 0
    finally:
        wb.close()
        store.close()


def test_a_deduplicating_environment_claims_the_key_before_answering(wb_service, store, config_path, clock):
    first = post(wb_service, lead(row_id="r-1"), env="dedupe").body
    assert first["status"] == "processed" and store.get_event(first["id"]) is None  # pending
    # Another receiver on the store (as another process would) finds the key claimed already.
    elsewhere = behind(
        SourceService(ConfigSet([config_path]), Store(store.url), environ=ENVIRON, clock=clock)
    )
    try:
        again = post(elsewhere, lead(row_id="r-1"), env="dedupe").body
        assert again["status"] == "idempotent" and again["actions"] == []
        assert store.get_event(first["id"]) is None  # decided before the first row was logged
    finally:
        elsewhere.close()
    other = post(wb_service, lead(row_id="r-2"), env="dedupe").body
    assert other["status"] == "processed"
    wb_service.settle()
    with store.engine.connect() as conn:
        holders = conn.execute(
            select(idempotency_keys.c.key, idempotency_keys.c.event_id, idempotency_keys.c.state)
        ).all()
    assert sorted(holders) == [("r-1", first["id"], "done"), ("r-2", other["id"], "done")]
    assert [store.get_event(r["id"])["status"] for r in (first, again, other)] == [
        "processed",
        "idempotent",
        "processed",
    ]
    assert store.get_event(first["id"])["idempotency_key"] == "r-1"
    assert count(store, local_workflow_runs) == 2  # the trigger ran once per key


def test_threads_sending_one_key_at_once_run_it_once(wb_service, store):
    barrier = threading.Barrier(8)
    replies = []

    def send(n):
        barrier.wait()
        replies.append(post(wb_service, lead(row_id="r-same", email=f"t{n}@acme.com"), env="dedupe").body)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["status"] for r in replies) == ["idempotent"] * 7 + ["processed"]
    wb_service.settle()
    assert sorted(store.get_event(r["id"])["status"] for r in replies) == ["idempotent"] * 7 + ["processed"]
    assert count(store, local_workflow_runs) == 1 and count(store, local_users) == 1


def test_a_deduplicating_row_that_fails_takes_the_ordinary_path(wb_service, store):
    reply = post(wb_service, lead(row_id="r-3", email=""), env="dedupe").body
    assert reply["status"] == "failed"
    assert store.get_event(reply["id"])["status"] == "failed"  # logged before the answer
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(idempotency_keys)).scalar() == 0


def test_close_logs_pending_rows_and_removes_the_journal(wb_service, store):
    replies = [post(wb_service, lead(email=f"c{n}@acme.com")).body for n in range(5)]
    assert count(store, events) == 0
    wb_service.close()
    assert {store.get_event(r["id"])["status"] for r in replies} == {"processed"}
    assert list(journal_folder(store).iterdir()) == []


# -- other processes -------------------------------------------------------------------------


def _answer_then(config_path, store_url, emails, then, replies, release, env="development"):
    """In another process: answer rows with write-behind pending, then die or wait and close."""
    store = Store(store_url)
    service = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON), pause=LONG)
    replies.put([post(service, lead(email=e, row_id=e), env=env).body for e in emails])
    replies.close()
    replies.join_thread()  # the answers are out of this process before it dies
    if then == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    release.wait(60)
    service.close()


def other_process(config_path, store_url, emails, then, env="development"):
    ctx = multiprocessing.get_context("spawn")
    replies, release = ctx.Queue(), ctx.Event()
    proc = ctx.Process(
        target=_answer_then, args=(config_path, store_url, emails, then, replies, release, env)
    )
    proc.start()
    deadline = time.monotonic() + 120
    while replies.empty():
        assert proc.is_alive() and time.monotonic() < deadline, f"the other process ended: {proc.exitcode}"
        time.sleep(0.05)
    answered = replies.get(timeout=10)
    if then == "die":
        proc.join(60)
        assert proc.exitcode == -signal.SIGKILL
    return proc, release, answered


def test_a_dead_processs_rows_are_logged_once_by_the_next_one(config_path, store_url, store, clock):
    emails = [f"d{n}@acme.com" for n in range(6)]
    _, _, answered = other_process(config_path, store_url, emails, "die")
    assert count(store, events) == 0
    folder = journal_folder(store)
    (path,) = journals.journal_files(folder)
    kept = path.read_bytes()

    wb = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock))
    assert wb.recover_orphans() == 6
    for reply in answered:
        entry = store.get_event(reply["id"])  # under the id it was answered with
        assert entry["status"] == "processed" and entry["actions"][0]["status"] == "success"
    assert journals.journal_files(folder) == []
    # The same journal found again (its process died after a batch committed): nothing twice.
    path.write_bytes(kept + kept[:-7])  # and an entry cut short at its end
    assert wb.recover_orphans() == 0
    assert count(store, events) == 6 and count(store, local_users) == 6


def test_keys_claimed_by_a_dead_process_stay_its_rows_own(config_path, store_url, store, clock):
    emails = ["k1@acme.com", "k2@acme.com"]
    _, _, answered = other_process(config_path, store_url, emails, "die", env="dedupe")
    assert [r["status"] for r in answered] == ["processed", "processed"]
    assert count(store, events) == 0
    service = wb = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock))
    try:
        assert wb.recover_orphans() == 2
        # Each row finds its own claim: logged as processed, its actions applied once.
        assert [store.get_event(r["id"])["status"] for r in answered] == ["processed", "processed"]
        assert count(store, local_workflow_runs) == 2
        assert post(service, lead(email="x@acme.com", row_id="k1@acme.com"), env="dedupe").body["status"] == (
            "idempotent"
        )
    finally:
        wb.close()


def test_reading_waits_for_a_live_processs_pending_rows_and_recovers_a_dead_ones(
    config_path, store_url, store, clock
):
    live, release, live_answers = other_process(config_path, store_url, ["live@acme.com"], "wait")
    _, _, dead_answers = other_process(config_path, store_url, ["dead@acme.com"], "die")
    wb = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock), pause=0.01)
    try:
        assert count(store, events) == 0
        # The live process waits out a long pause: settling hands up after the timeout, the
        # dead process's row is recovered on the way.
        assert not wb.settle(timeout=0.5)
        assert store.get_event(dead_answers[0]["id"])["status"] == "processed"
        assert store.get_event(live_answers[0]["id"]) is None
        release.set()  # the live process closes, writing its row
        live.join(60)
        assert wb.settle(timeout=5)
        assert store.get_event(live_answers[0]["id"])["status"] == "processed"
    finally:
        release.set()
        live.join(60)
        wb.close()


def test_a_trigger_answered_by_a_dead_process_gets_the_run_id_it_was_answered(
    tmp_path, fake_knock, store, store_url, clock
):
    raw = service_config(fake_knock.url)
    raw["environments"]["development"]["mappings"].append(TRIGGER)
    config_path = tmp_path / "trigger.json"
    config_path.write_text(json.dumps(raw))
    _, _, answered = other_process(config_path, store_url, ["t@acme.com"], "die")
    wb = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock))
    assert wb.recover_orphans() == 1
    with store.engine.connect() as conn:
        (run,) = conn.execute(select(local_workflow_runs.c.trigger_id)).scalars().all()
    assert [run] == run_ids(answered[0])
    wb.close()


def test_rows_answered_while_the_writer_cannot_write_are_logged_once_it_can(wb_service, store):
    held = store.engine.raw_connection()
    held.driver_connection.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        wb = wb_service
        reply = post(wb_service, lead(email="late@acme.com")).body
        assert reply["status"] == "processed"
        started = time.monotonic()
        assert not wb.flush(timeout=0.3)  # the batch waits for the lock
        assert time.monotonic() - started < 5
    finally:
        held.driver_connection.execute("ROLLBACK")
        held.close()
    assert wb.flush(timeout=30)
    assert store.get_event(reply["id"])["status"] == "processed"


def test_a_row_that_cannot_be_journaled_is_logged_before_it_is_answered(config_path, tmp_path, clock):
    store = Store(f"sqlite:///{tmp_path / 'events.sqlite'}")
    service = wb = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock))
    wb.folder.write_text("not a folder")  # the journal cannot be made here
    try:
        reply = post(service, lead()).body
        assert reply["status"] == "processed"
        assert store.get_event(reply["id"])["status"] == "processed"  # the ordinary path
    finally:
        wb.close()
        store.close()


def test_past_the_pending_limit_rows_are_logged_before_they_are_answered(wb_service, store, monkeypatch):
    import workbench.writebehind as module

    bodies = [json.dumps(lead(email=f"p{n}@acme.com")).encode() for n in range(3)]
    monkeypatch.setattr(module, "MAX_PENDING_BYTES", len(bodies[0]) + len(bodies[1]))
    first = [post(wb_service, body).body for body in bodies[:2]]
    assert [store.get_event(r["id"]) for r in first] == [None, None]  # pending
    third = post(wb_service, bodies[2]).body
    assert store.get_event(third["id"])["status"] == "processed"  # the ordinary path, after the two
    assert {store.get_event(r["id"])["status"] for r in first} == {"processed"}


def test_a_retry_pass_logs_what_a_dead_process_left(config_path, store_url, store, clock):
    _, _, answered = other_process(config_path, store_url, ["r1@acme.com", "r2@acme.com"], "die")
    service = wb = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock))
    try:
        assert count(store, events) == 0
        service.retry_due()  # what each `serve` worker runs every --retry-interval
        assert {store.get_event(r["id"])["status"] for r in answered} == {"processed"}
        assert journals.journal_files(journal_folder(store)) == []
    finally:
        wb.close()


def test_a_row_sent_again_after_a_failure_does_not_run_its_successes_again(wb_service, store):
    first = post(wb_service, lead(row_id="r-1", email=""), env="dedupe")
    assert first.http_status == 422  # the ordinary path: its key is released
    assert [a["status"] for a in first.body["actions"]] == ["failed", "success"]
    again = post(wb_service, lead(row_id="r-1"), env="dedupe").body
    assert again["status"] == "processed"
    assert again["actions"][1]["result"] == first.body["actions"][1]["result"]  # carried over
    assert post(wb_service, lead(row_id="r-1"), env="dedupe").body["status"] == "idempotent"
    wb_service.settle()
    assert store.get_event(again["id"])["status"] == "processed"
    assert count(store, local_users) == 1
    assert count(store, local_workflow_runs) == 1  # the trigger ran once


# -- deciding keys -----------------------------------------------------------------------------


def test_the_claim_arbiter_gives_a_key_to_the_first_event_until_it_expires(tmp_path):
    path = tmp_path / "events.sqlite.receiver-claims"
    one, other = ClaimArbiter(path), ClaimArbiter(path)  # as two processes would
    scope = ("clay", "dedupe", "lead.enriched")
    try:
        assert one.claim(scope, "r-1", "evt_a", 1000.0, 60, answered=True) is None
        assert other.claim(scope, "r-1", "evt_b", 1001.0, 60, answered=True) == Holder("evt_a", True)
        assert other.claim(scope, "r-1", "evt_a", 1002.0, 60, answered=True) is None  # its own
        assert other.claim(("clay", "dedupe", "lead.other"), "r-1", "evt_c", 1002.0, 60, True) is None
        assert one.claim(scope, "r-2", "evt_d", 1000.0, 60, answered=False) is None
        assert other.claim(scope, "r-2", "evt_e", 1001.0, 60, answered=True) == Holder("evt_d", False)
        assert other.claim(scope, "r-1", "evt_f", 1060.0, 60, answered=True) is None  # expired: taken
        assert one.sweep(1100.0) == 2  # r-2 and lead.other's r-1 (r-1 is evt_f's until 1120)
        assert one.claim(scope, "r-2", "evt_g", 1100.0, 60, answered=True) is None
    finally:
        one.close()
        other.close()


def test_a_key_the_log_holds_already_is_a_duplicate(wb_service, store, config_path, clock):
    ordinary = SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock)
    assert post(ordinary, lead(row_id="r-7"), env="dedupe").body["status"] == "processed"
    again = post(wb_service, lead(row_id="r-7"), env="dedupe").body
    assert again["status"] == "idempotent" and again["actions"] == []
    wb_service.settle()
    assert store.get_event(again["id"])["status"] == "idempotent"
    assert count(store, local_workflow_runs) == 1


def test_a_key_being_decided_in_the_log_elsewhere_is_decided_there(wb_service, store, clock):
    # Another process claimed the key to decide it on the ordinary path, then died before its
    # row was logged: this row waits for the writer, which decides it in the log.
    folder = journal_folder(store)
    elsewhere = ClaimArbiter(folder.with_suffix(".receiver-claims"))
    scope = ("clay", "dedupe", "lead.enriched")
    assert elsewhere.claim(scope, "r-8", "evt_gone", clock().timestamp(), 3600, answered=False) is None
    elsewhere.close()
    first = post(wb_service, lead(row_id="r-8"), env="dedupe").body
    assert first["status"] == "processed" and store.get_event(first["id"])["status"] == "processed"
    again = post(wb_service, lead(row_id="r-8"), env="dedupe").body
    assert again["status"] == "idempotent"
    wb_service.settle()
    assert count(store, local_workflow_runs) == 1


def test_a_duplicate_answered_by_a_dead_process_stays_a_duplicate(config_path, store_url, store, clock):
    holder, release, held = other_process(config_path, store_url, ["same@acme.com"], "wait", env="dedupe")
    try:
        _, _, duplicate = other_process(config_path, store_url, ["same@acme.com"], "die", env="dedupe")
        assert [held[0]["status"], duplicate[0]["status"]] == ["processed", "idempotent"]
        wb = behind(SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock))
        try:
            # Logged before the row it duplicates is: still a duplicate, which ran nothing.
            assert wb.recover_orphans() == 1
            assert store.get_event(duplicate[0]["id"])["status"] == "idempotent"
            assert store.get_event(held[0]["id"]) is None
        finally:
            wb.close()
        release.set()
        holder.join(60)
        assert store.get_event(held[0]["id"])["status"] == "processed"
        assert count(store, local_workflow_runs) == 1 and count(store, local_users) == 1
    finally:
        release.set()
        holder.join(60)

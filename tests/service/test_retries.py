"""Faults: Knock failing transiently or for good, retries with backoff, replays after a fix."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

from tests.service.conftest import lead, post
from workbench.engine import SourceEvent

TRIGGER = "4:workflows_trigger"
HOUR = 3600


def actions_by_mapping(entry):
    return {a["mapping"]: a for a in entry["actions"]}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_knock_failing_then_recovering_ends_with_one_run_per_event(service, store, clock, fake_knock):
    fake_knock.fail(500, times=5, path="/v1/workflows")
    ids = []
    for i in range(3):
        reply = post(service, lead(row_id=f"r{i}", email=f"lead{i}@acme.com"), env="knock")
        assert (reply.body["status"], reply.http_status) == ("queued", 202)
        statuses = {a["action"]: a["status"] for a in reply.body["actions"]}
        assert statuses == {"users_identify": "success", "workflows_trigger": "queued"}
        ids.append(reply.body["id"])
    for _ in range(3):
        clock.advance(HOUR)
        service.retry_due()
    for event_id in ids:
        entry = store.get_event(event_id)
        assert entry["status"] == "processed"
        trigger = actions_by_mapping(entry)[TRIGGER]
        assert trigger["status"] == "success"
        assert trigger["next_attempt_at"] is None
        assert trigger["attempts"] >= 2
        actor = actions_by_mapping(entry)["0:users_identify"]["payload"]["id"]
        sent = [r for r in fake_knock.requests_to("/v1/workflows") if r.json["actor"] == actor]
        assert len(sent) == trigger["attempts"]
        # Every attempt of this event's trigger carried the same key, derived from the event.
        assert {r.idempotency_key for r in sent} == {f"{event_id}:{TRIGGER}"}
    runs = fake_knock.runs("new-lead")
    assert sorted(r["actor"] for r in runs) == [f"lead{i}@acme.com" for i in range(3)]
    assert {r["idempotency_key"] for r in runs} == {f"{event_id}:{TRIGGER}" for event_id in ids}
    attempts = fake_knock.requests_to("/v1/workflows/new-lead/trigger")
    assert len(attempts) == 3 + 5  # every failure was retried, every success sent once
    assert len(fake_knock.requests_to("/v1/users")) == 3  # successes are not re-run


def test_retry_after_is_honoured(service, store, clock, fake_knock):
    fake_knock.fail(429, retry_after=120, path="/v1/workflows")
    reply = post(service, lead(row_id="r1"), env="knock")
    assert reply.http_status == 202
    trigger = actions_by_mapping(store.get_event(reply.body["id"]))[TRIGGER]
    assert (at(trigger["next_attempt_at"]) - clock.now).total_seconds() == 120
    clock.advance(60)
    assert service.retry_due() == 0
    assert len(fake_knock.requests_to("/v1/workflows")) == 1
    clock.advance(61)
    assert service.retry_due() == 1
    assert store.get_event(reply.body["id"])["status"] == "processed"
    assert len(fake_knock.runs()) == 1


def test_slow_knock_times_out_and_the_retry_does_not_trigger_twice(service, store, clock, fake_knock):
    held = threading.Event()
    fake_knock.fail(None, until=held, path="/v1/workflows")  # the sink gives up after 1 s; Knock goes on
    reply = post(service, lead(row_id="r1"), env="knock")
    assert reply.body["status"] == "queued"
    assert "did not answer" in actions_by_mapping(store.get_event(reply.body["id"]))[TRIGGER]["error"]
    clock.advance(HOUR)
    assert service.retry_due() == 1
    assert store.get_event(reply.body["id"])["status"] == "processed"
    held.set()  # the first request reaches Knock after the retry, under the same key
    wait_until_answered(fake_knock, "/v1/workflows")
    assert len(fake_knock.runs()) == 1


def wait_until_answered(fake_knock, path: str) -> None:
    """Poll (with a generous deadline) until Knock has answered every request to `path`."""
    deadline = time.monotonic() + 60
    while any(r.status == 0 for r in fake_knock.requests_to(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(r.status for r in fake_knock.requests_to(path))


def test_terminal_refusal_fails_until_replayed_and_the_replay_reruns_only_the_failure(
    service, store, clock, fake_knock
):
    fake_knock.fail(422, path="/v1/workflows", body={"message": "workflow new-lead is not committed"})
    reply = post(service, lead(row_id="r1"), env="knock")
    assert (reply.body["status"], reply.http_status) == ("failed", 422)
    trigger = [a for a in reply.body["actions"] if a["action"] == "workflows_trigger"][0]
    assert trigger["error"] == "Knock answered 422 to workflows_trigger: workflow new-lead is not committed"
    clock.advance(24 * HOUR - 60)
    assert service.retry_due() == 0  # terminal failures wait for a replay
    # Only successes are remembered: the same row again is processed, not a duplicate, and runs
    # only what failed (the identify's success is carried over).
    fake_knock.fail(422, path="/v1/workflows")
    again = post(service, lead(row_id="r1"), env="knock").body
    assert again["status"] == "failed"
    assert [a["status"] for a in again["actions"]] == ["success", "failed"]
    assert actions_by_mapping(store.get_event(reply.body["id"]))[TRIGGER]["request_key"] is None
    replayed = service.replay(reply.body["id"])  # after the workflow was fixed in Knock
    assert replayed["status"] == "processed"
    assert replayed["replays"] == 1
    assert [a["status"] for a in replayed["actions"]] == ["success", "success"]
    assert (
        len(fake_knock.requests_to("/v1/users")) == 1
    )  # neither the row sent again nor the replay re-ran it
    assert len(fake_knock.runs()) == 1
    assert post(service, lead(row_id="r1"), env="knock").body["status"] == "idempotent"
    # Knock answers a key with its first answer for 24 h: the replay went under a new key.
    keys = [r.idempotency_key for r in fake_knock.requests_to("/v1/workflows")]
    event_key = f"{reply.body['id']}:{TRIGGER}"
    assert keys[0] == event_key and keys[-1] == f"{event_key}:2"
    assert actions_by_mapping(replayed)[TRIGGER]["request_key"] == f"{event_key}:2"


def set_trigger_param(service, config_path, name: str, value) -> None:
    raw = json.loads(config_path.read_text())
    (trigger,) = [
        m for m in raw["environments"]["knock"]["mappings"] if m["params"].get("key") == {"value": "new-lead"}
    ]
    trigger["params"][name] = value
    config_path.write_text(json.dumps(raw, indent=1))
    service.configs.reload_if_changed()


def test_replay_after_fixing_a_refused_trigger_sends_the_new_parameters_under_a_new_key(
    service, store, config_path, fake_knock
):
    set_trigger_param(service, config_path, "recipients", {"value": ["sales-tem"]})
    fake_knock.fail(422, path="/v1/workflows", body={"message": "recipient sales-tem not found"})
    reply = post(service, lead(row_id="r1"), env="knock")
    assert reply.body["status"] == "failed"
    set_trigger_param(service, config_path, "recipients", {"value": ["sales-team"]})
    replayed = service.replay(reply.body["id"])
    assert replayed["status"] == "processed", replayed
    (run,) = fake_knock.runs()
    assert run["recipient"] == "sales-team"
    sent = [r.json["recipients"] for r in fake_knock.requests_to("/v1/workflows")]
    assert sent == [["sales-tem"], ["sales-team"]]
    assert run["idempotency_key"] == f"{reply.body['id']}:{TRIGGER}:2"


def test_a_trigger_that_may_have_run_keeps_its_key_even_when_the_mapping_changes(
    service, store, clock, config_path, fake_knock
):
    held = threading.Event()
    fake_knock.fail(None, until=held, path="/v1/workflows")  # times out here, runs in Knock
    reply = post(service, lead(row_id="r1"), env="knock")
    assert reply.body["status"] == "queued"
    event_key = f"{reply.body['id']}:{TRIGGER}"
    assert actions_by_mapping(store.get_event(reply.body["id"]))[TRIGGER]["request_key"] == event_key
    held.set()
    wait_until_answered(fake_knock, "/v1/workflows")
    assert len(fake_knock.runs()) == 1
    set_trigger_param(service, config_path, "recipients", {"value": ["sales-team", "ops"]})
    clock.advance(HOUR)
    assert service.retry_due() == 1
    entry = store.get_event(reply.body["id"])
    trigger = actions_by_mapping(entry)[TRIGGER]
    # Knock refuses the key with other parameters; a new key would run the workflow twice.
    assert (entry["status"], trigger["request_key"]) == ("failed", event_key)
    assert (
        "Knock answered 422" in trigger["error"]
        and f"Idempotency-Key {event_key} is kept" in trigger["error"]
    )
    assert service.replay(reply.body["id"])["status"] == "failed"
    assert {r.idempotency_key for r in fake_knock.requests_to("/v1/workflows")} == {event_key}
    assert len(fake_knock.runs()) == 1


def test_queued_event_is_a_duplicate_until_it_gives_up(service, store, clock, fake_knock):
    fake_knock.fail(503, times=store.retry.max_attempts, path="/v1/workflows")
    first = post(service, lead(row_id="r1"), env="knock")
    assert first.body["status"] == "queued"
    assert post(service, lead(row_id="r1"), env="knock").body["status"] == "idempotent"
    for _ in range(5):
        clock.advance(HOUR)
        service.retry_due()
    entry = store.get_event(first.body["id"])
    assert entry["status"] == "failed"
    trigger = actions_by_mapping(entry)[TRIGGER]
    assert trigger["attempts"] == store.retry.max_attempts
    assert trigger["error"].startswith(
        f"gave up after {store.retry.max_attempts} attempts; last error: Knock answered 503"
    )
    # It never succeeded, so it is not remembered.
    assert post(service, lead(row_id="r1"), env="knock").body["status"] == "processed"


def test_replay_after_fixing_the_mapping(service, store, config_path):
    raw = json.loads(config_path.read_text())
    mapping = raw["environments"]["development"]["mappings"][0]
    mapping["params"]["id"] = "body.work_email"
    config_path.write_text(json.dumps(raw))
    service.configs.reload_if_changed()
    reply = post(service, lead())
    assert reply.body["actions"][0]["error"] == "param `id`: path `body.work_email` resolved to nothing"
    mapping["params"]["id"] = "body.email"
    config_path.write_text(json.dumps(raw, indent=1))
    service.configs.reload_if_changed()
    replayed = service.replay(reply.body["id"])
    assert replayed["status"] == "processed"
    assert replayed["actions"][0]["payload"]["id"] == "jane@acme.com"
    assert replayed["origin"] == "live"


def test_event_whose_process_died_is_picked_up(service, store, clock):
    event = SourceEvent(
        json.dumps(lead()).encode(), {"content-type": "application/json"}, received_at=clock()
    )
    event_id = store.record_received(event, "clay", "development")  # and then the process was killed
    clock.advance(60)
    assert service.retry_due() == 0  # maybe still being processed
    clock.advance(15 * 60)
    assert service.retry_due() == 1
    assert store.get_event(event_id)["status"] == "processed"


def test_replaying_a_duplicate_runs_nothing(service, store, fake_knock):
    post(service, lead(row_id="r1"), env="knock")
    duplicate = post(service, lead(row_id="r1"), env="knock")
    assert service.replay(duplicate.body["id"])["status"] == "idempotent"
    assert len(fake_knock.runs()) == 1


def test_replay_of_a_processed_event_runs_nothing_again(service, store, fake_knock):
    reply = post(service, lead(row_id="r1"), env="knock")
    assert service.replay(reply.body["id"])["status"] == "processed"
    assert len(fake_knock.requests_to("/v1/users")) == 1
    assert len(fake_knock.requests_to("/v1/workflows")) == 1


def test_a_trigger_that_may_have_run_keeps_its_key_through_a_replay_that_could_not_map_it(
    service, store, clock, config_path, fake_knock
):
    held = threading.Event()
    fake_knock.fail(None, until=held, path="/v1/workflows")  # times out here, runs in Knock later
    reply = post(service, lead(row_id="r1"), env="knock")
    event_key = f"{reply.body['id']}:{TRIGGER}"
    set_trigger_param(service, config_path, "recipients", "body.no_such_column")
    replayed = service.replay(reply.body["id"])
    trigger = actions_by_mapping(replayed)[TRIGGER]
    assert (trigger["status"], trigger["request_key"]) == ("failed", event_key)
    assert "resolved to nothing" in trigger["error"]
    set_trigger_param(service, config_path, "recipients", {"value": ["sales-team"]})
    assert service.replay(reply.body["id"])["status"] == "processed"
    assert {r.idempotency_key for r in fake_knock.requests_to("/v1/workflows")} == {event_key}
    held.set()  # the first request reaches Knock last, with other parameters under the same key
    wait_until_answered(fake_knock, "/v1/workflows")
    assert len(fake_knock.runs()) == 1

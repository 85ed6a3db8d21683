"""The event log: round trips, redaction, filters, retry scheduling and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from workbench.engine import ActionResult, Outcome, SourceEvent
from workbench.retry import RetryPolicy
from workbench.store import Store, StoreError, actions, idempotency_keys
from workbench.store.db import READ

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def received(
    store, body=b'{"event": "lead.enriched"}', headers=None, at=T0, source="clay", env="development"
):
    event = SourceEvent(body, headers or {"Content-Type": "application/json"}, received_at=at)
    return store.record_received(event, source, env)


def identify(status="success", mapping="0:users_identify", error=None, retry_after=None):
    return ActionResult(
        "users_identify",
        status,
        mapping,
        params={"id": "body.email"},
        payload={"id": "jane@acme.com"},
        result=None if error else {"id": "jane@acme.com"},
        error=error,
        retry_after=retry_after,
    )


def test_round_trip_keeps_body_and_drops_authorization(store):
    body = b'{"event": "lead.enriched", "email": "jane@acme.com", "note": "line\nbreak"}'
    event_id = received(
        store,
        body,
        headers=[
            ("AUTHORIZATION", "Bearer whsec-secret"),
            ("X-Clay-Table-Id", "t_1"),
            ("Content-Type", "text/plain"),
        ],
    )
    assert event_id.startswith("evt_")
    store.record_outcome(event_id, Outcome("processed", "lead.enriched", [identify()]), now=T0)
    entry = store.get_event(event_id)
    assert entry["body"] == body.decode()
    assert entry["headers"] == {"x-clay-table-id": "t_1", "content-type": "text/plain"}
    assert "whsec-secret" not in repr(entry)
    assert (entry["status"], entry["event"], entry["origin"]) == ("processed", "lead.enriched", "live")
    assert entry["received_at"] == "2026-03-01T09:00:00Z"
    (action,) = entry["actions"]
    assert action["action"] == "users_identify"
    assert action["status"] == "success"
    assert action["payload"] == {"id": "jane@acme.com"}
    assert action["params"] == {"id": "body.email"}
    assert action["result"] == {"id": "jane@acme.com"}
    assert action["error"] is None
    assert action["attempts"] == 1
    assert action["next_attempt_at"] is None


def test_undecodable_body_is_shown_replaced_and_kept_raw(store):
    raw = b'{"event": "lead.enriched", "name": "Jos\xe9"}'
    event_id = received(store, raw)
    assert store.get_event(event_id)["body"] == '{"event": "lead.enriched", "name": "Jos\ufffd"}'
    assert store.raw_body(event_id) == raw


def test_unknown_event_is_none(store):
    assert store.get_event("evt_missing") is None
    assert store.raw_body("evt_missing") is None


def test_record_received_is_committed_before_processing(store_url, store):
    event_id = received(store)
    other = Store(store_url)  # another connection pool, as another worker process would have
    try:
        assert other.get_event(event_id)["status"] == "received"
    finally:
        other.close()


def test_list_events_newest_first_with_filters(store):
    ids = []
    for minute, (status, event) in enumerate(
        [
            ("processed", "lead.enriched"),
            ("failed", "lead.enriched"),
            ("no_mapping", "other"),
            ("failed", "other"),
        ]
    ):
        event_id = received(store, at=T0 + timedelta(minutes=minute))
        store.record_outcome(event_id, Outcome(status, event), now=T0)
        ids.append(event_id)
    received(store, at=T0, env="production")
    listed = store.list_events("clay", "development")
    assert [e["id"] for e in listed] == ids[::-1]
    assert set(listed[0]) == {"id", "status", "event", "received_at", "origin"}
    assert [e["id"] for e in store.list_events("clay", "development", status="failed")] == [ids[3], ids[1]]
    assert [e["id"] for e in store.list_events("clay", "development", event="other")] == [ids[3], ids[2]]
    since = T0 + timedelta(minutes=2)
    assert [e["id"] for e in store.list_events("clay", "development", since=since)] == [ids[3], ids[2]]
    assert [e["id"] for e in store.list_events("clay", "development", since="2026-03-01T09:02:00Z")] == [
        ids[3],
        ids[2],
    ]
    assert len(store.list_events("clay", "development", limit=1)) == 1
    assert store.find_events("failed") == [ids[1], ids[3]]
    assert store.find_events("failed", "clay", "development", limit=1) == [ids[1]]


def test_status_summary_counts_the_window(store):
    for days_ago, status in [(40, "failed"), (3, "failed"), (2, "processed"), (1, "processed")]:
        event_id = received(store, at=T0 - timedelta(days=days_ago))
        store.record_outcome(event_id, Outcome(status, "lead.enriched"), now=T0)
    summary = store.status_summary("clay", "development", now=T0)
    assert summary == {"counts": {"failed": 1, "processed": 2}, "last_received_at": "2026-02-28T09:00:00Z"}
    assert store.status_summary("clay", "nowhere", now=T0) == {"counts": {}, "last_received_at": None}


def test_queued_action_is_scheduled_with_backoff_and_retry_after(store):
    event_id = received(store)
    outcome = Outcome("queued", "lead.enriched", [identify("queued", error="Knock answered 500")])
    store.record_outcome(event_id, outcome, now=T0)
    (action,) = store.get_event(event_id)["actions"]
    assert action["attempts"] == 1
    due = datetime.fromisoformat(action["next_attempt_at"].replace("Z", "+00:00"))
    policy = store.retry
    assert (
        T0 + timedelta(seconds=policy.base_seconds / 2) <= due <= T0 + timedelta(seconds=policy.base_seconds)
    )

    outcome = Outcome("queued", "lead.enriched", [identify("queued", error="429", retry_after=600)])
    store.record_outcome(event_id, outcome, now=T0)
    (action,) = store.get_event(event_id)["actions"]
    assert action["attempts"] == 2
    assert action["next_attempt_at"] == "2026-03-01T09:10:00Z"


def test_queued_action_gives_up_after_the_last_attempt(store_url):
    store = Store(store_url, retry=RetryPolicy(max_attempts=2))
    try:
        event_id = received(store)
        for _ in range(2):
            outcome = Outcome("queued", "lead.enriched", [identify("queued", error="Knock answered 503")])
            store.record_outcome(event_id, outcome, now=T0)
        assert outcome.status == "failed"
        assert outcome.actions[0].error == "gave up after 2 attempts; last error: Knock answered 503"
        entry = store.get_event(event_id)
        assert entry["status"] == "failed"
        assert entry["actions"][0]["next_attempt_at"] is None
    finally:
        store.close()


def test_earlier_success_is_not_counted_again(store):
    event_id = received(store)
    first = Outcome(
        "queued",
        "lead.enriched",
        [identify(), identify("queued", mapping="1:workflows_trigger", error="500")],
    )
    store.record_outcome(event_id, first, now=T0)
    again = Outcome("processed", "lead.enriched", [identify(), identify(mapping="1:workflows_trigger")])
    store.record_outcome(event_id, again, now=T0, applied=["1:workflows_trigger"])
    attempts = {a["mapping"]: (a["status"], a["attempts"]) for a in store.get_event(event_id)["actions"]}
    assert attempts == {"0:users_identify": ("success", 1), "1:workflows_trigger": ("success", 2)}


def test_claim_due_hands_each_event_to_one_caller(store):
    event_id = received(store)
    outcome = Outcome("queued", "lead.enriched", [identify("queued", error="500")])
    store.record_outcome(event_id, outcome, now=T0)
    assert store.claim_due(T0) == []  # not due yet
    later = T0 + timedelta(hours=1)
    assert store.claim_due(later) == [event_id]
    assert store.claim_due(later) == []  # leased to the first caller
    after_lease = later + timedelta(seconds=store.retry.lease_seconds + 1)
    assert store.claim_due(after_lease) == [event_id]


def test_claim_stalled_finds_events_whose_processing_never_finished(store):
    event_id = received(store)
    done = received(store)
    store.record_outcome(done, Outcome("processed", "lead.enriched"), now=T0)
    assert store.claim_stalled(timedelta(minutes=10), now=T0 + timedelta(minutes=5)) == []
    assert store.claim_stalled(timedelta(minutes=10), now=T0 + timedelta(minutes=11)) == [event_id]
    assert store.claim_stalled(timedelta(minutes=10), now=T0 + timedelta(minutes=12)) == []


def test_mark_error_makes_the_event_replayable(store):
    event_id = received(store)
    store.mark_error(event_id, "internal error while processing (RuntimeError)")
    entry = store.get_event(event_id)
    assert (entry["status"], entry["error"]) == ("failed", "internal error while processing (RuntimeError)")


def test_prune_deletes_old_events_actions_and_expired_keys(store):
    old = received(store, at=T0 - timedelta(days=31))
    store.record_outcome(old, Outcome("processed", "lead.enriched", [identify()]), now=T0)
    recent = received(store, at=T0 - timedelta(days=29))
    store.record_outcome(recent, Outcome("processed", "lead.enriched", [identify()]), now=T0)
    port = store.idempotency()
    port.reserve(("clay", "development", "lead.enriched"), "expired", T0 - timedelta(days=2), 3600)
    port.reserve(("clay", "development", "lead.enriched"), "live", T0, 3600)
    assert store.prune(30, now=T0) == 1
    assert store.get_event(old) is None
    assert store.get_event(recent)["actions"][0]["status"] == "success"
    with store.engine.connect() as conn:
        assert conn.execute(select(actions.c.event_id)).scalars().all() == [recent]
        assert conn.execute(select(idempotency_keys.c.key)).scalars().all() == ["live"]
    assert store.prune(0, now=T0) == 1


def test_sqlite_store_uses_wal_and_creates_its_folder(sqlite_url, tmp_path):
    store = Store(sqlite_url)
    try:
        assert (tmp_path / "data" / "workbench.sqlite").exists()
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            # A writer waits for the lock in BEGIN IMMEDIATE (its own short polls), then holds it.
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 0
        # A reader on the same pooled connection waits on SQLite's own timeout again.
        with store.engine.connect().execution_options(**READ) as conn, conn.begin():
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
    finally:
        store.close()


def test_a_new_sqlite_store_takes_large_pages_and_an_existing_one_keeps_its_own(tmp_path):
    """8 KiB pages for a new file; a store made with SQLite's 4 KiB default stays so (SQLite fixes
    a file's page size), and either checkpoints its write-ahead log every 16 MB."""
    import sqlite3

    from workbench.store.db import PAGE_SIZE, WAL_AUTOCHECKPOINT_BYTES

    old = tmp_path / "old.sqlite"
    made = sqlite3.connect(old)
    made.execute("CREATE TABLE kept (x)")
    made.close()
    for path, page_size in ((tmp_path / "new.sqlite", PAGE_SIZE), (old, 4096)):
        store = Store(f"sqlite:///{path}")
        try:
            event_id = received(store)
            assert store.get_event(event_id)["id"] == event_id
            with store.engine.connect() as conn:
                assert conn.execute(text("PRAGMA page_size")).scalar() == page_size
                pages = conn.execute(text("PRAGMA wal_autocheckpoint")).scalar()
                assert pages == WAL_AUTOCHECKPOINT_BYTES // page_size
        finally:
            store.close()
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_two_stores_on_one_file_create_tables_once(sqlite_url):
    first, second = Store(sqlite_url), Store(sqlite_url)
    try:
        event_id = received(first)
        assert second.get_event(event_id)["id"] == event_id
    finally:
        first.close()
        second.close()


def test_a_read_only_database_is_refused_with_sqlites_reason_and_no_sql(tmp_path, monkeypatch):
    import sqlite3

    path = tmp_path / "readonly.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (a)")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(StoreError) as caught:
        Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    message = str(caught.value)
    assert message.startswith("cannot create or upgrade the event-log tables in Store('sqlite:///"), message
    assert message.endswith(": attempt to write a readonly database (sqlite3.OperationalError)"), message
    assert list((tmp_path / "cwd").iterdir()) == []  # no folder named after the URI


def test_unreadable_store_url_says_what_to_write():
    with pytest.raises(StoreError, match="sqlite:///data/workbench.sqlite"):
        Store("not a url")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    headers=st.dictionaries(
        st.sampled_from(["Authorization", "authorization", "X-Clay-Table-Id", "Content-Type", "X-Other"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=4,
    ),
)
def test_any_body_and_headers_round_trip(sqlite_url, body, headers):
    store = Store(sqlite_url)
    try:
        event_id = store.record_received(SourceEvent(body, headers), "clay", "development")
        entry = store.get_event(event_id)
        assert entry["body"] == body.decode("utf-8", "replace").replace("\x00", "\ufffd")
        try:
            exact = b"\x00" not in body and body.decode("utf-8")
        except UnicodeDecodeError:
            exact = False
        # Text that shows the body exactly is enough; otherwise the bytes are kept for replays.
        assert store.raw_body(event_id) == (exact if exact is not False else body)
        expected = {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}
        assert entry["headers"] == expected
    finally:
        store.close()


def test_text_body_with_lone_surrogates_is_kept(store):
    event_id = received(store, '{"event": "x", "name": "\ud800"}')
    assert store.get_event(event_id)["body"] == '{"event": "x", "name": "\ufffd\ufffd\ufffd"}'
    assert store.raw_body(event_id) == '{"event": "x", "name": "\ud800"}'.encode("utf-8", "surrogatepass")


def test_nul_characters_are_shown_replaced_and_kept_raw(store):
    raw = b'{"event": "lead.enriched", "note": "a\x00b"}'
    event_id = received(store, raw)
    assert store.get_event(event_id)["body"] == '{"event": "lead.enriched", "note": "a\ufffdb"}'
    assert store.raw_body(event_id) == raw

"""Loading many log entries at once: the same entries as one at a time, in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event

from workbench.engine import Outcome

from .test_log import T0, identify, received


def statements(store):
    """A list that collects the SQL statements the store runs from now on (and a way to stop)."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(store.engine, "before_cursor_execute", count)


def logged(store):
    """Events with no action, one action and several, whose actions were written interleaved and
    out of position order; returns their ids."""
    bare = received(store, at=T0)
    one = received(store, at=T0 + timedelta(minutes=1))
    several = received(store, at=T0 + timedelta(minutes=2))
    failed = received(store, at=T0 + timedelta(minutes=3))
    first = Outcome(
        "queued",
        "lead.enriched",
        [identify(), identify("queued", mapping="1:workflows_trigger", error="500")],
    )
    store.record_outcome(several, first, now=T0)
    store.record_outcome(one, Outcome("processed", "lead.enriched", [identify()]), now=T0)
    store.record_outcome(
        failed, Outcome("failed", "lead.enriched", [identify("failed", error="no id")]), now=T0
    )
    # Again, with a new mapping in front: it is written last but comes first by position.
    again = Outcome(
        "processed",
        "lead.enriched",
        [
            identify(mapping="2:tenants_set"),
            identify(),
            identify(mapping="1:workflows_trigger"),
        ],
    )
    store.record_outcome(several, again, now=T0, applied=["2:tenants_set", "1:workflows_trigger"])
    return bare, one, several, failed


def test_get_events_returns_what_get_event_returns(store):
    bare, one, several, failed = logged(store)
    ids = [bare, one, several, failed]
    entries = store.get_events([*ids, "evt_missing", one])
    assert set(entries) == set(ids)
    for event_id in ids:
        assert entries[event_id] == store.get_event(event_id)
    assert entries[bare]["actions"] == []
    assert [a["mapping"] for a in entries[one]["actions"]] == ["0:users_identify"]
    assert [a["mapping"] for a in entries[several]["actions"]] == [
        "2:tenants_set",
        "0:users_identify",
        "1:workflows_trigger",
    ]
    assert entries[several]["actions"][2]["attempts"] == 2
    assert entries[failed]["actions"][0]["error"] == "no id"
    assert store.get_event("evt_missing") is None


def test_get_events_needs_no_query_for_no_ids(store):
    seen, stop = statements(store)
    try:
        assert store.get_events([]) == {}
    finally:
        stop()
    assert seen == []


def test_get_events_reads_long_id_lists_in_chunks(store):
    bare, one, several, failed = logged(store)
    # The real ids fall into different chunks of 500, among ids that are not in the log.
    ids = [f"evt_missing_{n}" for n in range(1200)]
    ids[3], ids[499], ids[500], ids[1199] = bare, one, several, failed
    seen, stop = statements(store)
    try:
        entries = store.get_events(ids)
    finally:
        stop()
    assert entries == {event_id: store.get_event(event_id) for event_id in (bare, one, several, failed)}
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    # Three chunks: the events of each, and the actions of each that has any events.
    assert len(selects) == 3 + 3

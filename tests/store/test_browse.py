"""The event-log page's reads: each filter, search, keyset pages both ways, previews cut in SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workbench.engine import ActionResult, Outcome, SourceEvent, new_event_id
from workbench.store import browse as browsing
from workbench.store.browse import Cursor, Filters, browse, count_matching, ids_matching, whole_entry

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def log_events(store, specs):
    """specs: (minutes after T0, origin, event, status, body text, payload or None) per event."""
    done, ids = [], []
    for minutes, origin, event_type, status, body, payload in specs:
        at = T0 + timedelta(minutes=minutes)
        event = SourceEvent(body, {"content-type": "application/json"}, origin=origin, received_at=at)
        event.id = new_event_id(at)
        actions = []
        if payload is not None:
            actions.append(
                ActionResult(
                    "users_identify",
                    "success" if status == "processed" else "failed",
                    "m0",
                    payload=payload,
                    error=None
                    if status == "processed"
                    else "param `id`: path `body.email` resolved to nothing",
                )
            )
        done.append((event, "clay", "development", Outcome(status, event_type, actions=actions)))
        ids.append(event.id)
    with store.transaction() as conn:
        store.record_processed(conn, done, T0)
    return ids


def ids_of(page):
    return [row["id"] for row in page.rows]


@pytest.fixture
def logged(store):
    specs = []
    for n in range(30):
        origin = ("live", "backfill", "replay")[n % 3]
        status = "failed" if n % 4 == 0 else "processed"
        body = f'{{"event": "lead.enriched", "email": "lead{n}@acme.com", "note": "row {n}"}}'
        specs.append(
            (n, origin, "lead.enriched" if n % 5 else "lead.archived", status, body, {"id": f"lead{n}"})
        )
    return store, log_events(store, specs)


def test_filters_each_pick_exactly_their_events(logged):
    store, ids = logged
    newest_first = ids[::-1]
    assert ids_of(browse(store, "clay", "development", Filters(), 100)) == newest_first
    cases = [
        (Filters(status="failed"), lambda n: n % 4 == 0),
        (Filters(origin="backfill"), lambda n: n % 3 == 1),
        (Filters(event="lead.archived"), lambda n: n % 5 == 0),
        (Filters(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=20)), lambda n: 10 <= n < 20),
        (Filters(status="failed", origin="live"), lambda n: n % 4 == 0 and n % 3 == 0),
        (Filters(search="LEAD7@acme"), lambda n: n == 7),
        (Filters(search="row 1"), lambda n: str(n).startswith("1")),
        (Filters(search=ids[3]), lambda n: n == 3),
        (Filters(search="archived"), lambda n: n % 5 == 0),
        (Filters(search="100%_"), lambda n: False),
    ]
    for filters, expected in cases:
        want = [ids[n] for n in range(30) if expected(n)][::-1]
        assert ids_of(browse(store, "clay", "development", filters, 100)) == want, filters
        assert count_matching(store, "clay", "development", filters) == len(want), filters
        assert ids_matching(store, "clay", "development", filters, 100) == want[::-1], filters
    assert browse(store, "clay", "staging", Filters(), 100).rows == []


def test_keyset_pages_walk_the_log_both_ways(logged):
    store, ids = logged
    newest_first = ids[::-1]
    pages, page = [], browse(store, "clay", "development", Filters(), 7)
    assert page.newer is None
    while True:
        pages.append(ids_of(page))
        if page.older is None:
            break
        page = browse(store, "clay", "development", Filters(), 7, before=page.older)
    assert [i for p in pages for i in p] == newest_first and [len(p) for p in pages] == [7, 7, 7, 7, 2]
    back = []
    while page.newer is not None:
        page = browse(store, "clay", "development", Filters(), 7, after=page.newer)
        back.append(ids_of(page))
    # Going back, pages end where the forward ones began, the newest page included.
    assert back[-1] == newest_first[:7] and [i for p in reversed(back) for i in p] == newest_first[:28]
    assert Cursor.parse(str(Cursor(T0, ids[0]))) == Cursor(T0, ids[0])


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(search="row 1"), lambda n: str(n).startswith("1")),
        (Filters(status="processed", origin="backfill"), lambda n: n % 4 != 0 and n % 3 == 1),
    ],
)
def test_conditions_no_index_holds_read_a_bounded_window_then_go_on(logged, monkeypatch, filters, expected):
    store, ids = logged
    monkeypatch.setattr(browsing, "WINDOW", {"sqlite": 10, "postgresql": 10})
    page = browse(store, "clay", "development", filters, 50)
    assert page.searched_to is not None and page.older is not None
    found = ids_of(page)
    while page.older is not None:
        page = browse(store, "clay", "development", filters, 50, before=page.older)
        found += ids_of(page)
    assert found == [ids[n] for n in range(30) if expected(n)][::-1]
    # Back up again, newer pages window alike.
    newer, back = (
        browse(store, "clay", "development", filters, 50, after=Cursor(T0 - timedelta(1), ids[0])),
        [],
    )
    back += ids_of(newer)
    while newer.newer is not None:
        newer = browse(store, "clay", "development", filters, 50, after=newer.newer)
        back = ids_of(newer) + back
    assert back == found


def test_list_columns_are_cut_whatever_a_row_holds(store):
    big = '{"event": "lead.enriched", "blob": "' + "x" * 300_000 + '"}'
    deep = "[" * 5000 + "]" * 5000
    (big_id, deep_id) = log_events(
        store,
        [
            (0, "live", "e" * 5000, "failed", big, {"id": "jane", "properties": {"blob": "y" * 300_000}}),
            (1, "live", None, "invalid", deep, None),
        ],
    )
    rows = {r["id"]: r for r in browse(store, "clay", "development", Filters(), 10).rows}
    row = rows[big_id]
    assert len(row["body"]) == browsing.BODY_PREVIEW and row["body_length"] == len(big)
    assert len(row["event"]) == browsing.EVENT_PREVIEW and row["event_length"] == 5000
    (action,) = row["actions"]
    assert len(action["payload"]) == browsing.PAYLOAD_PREVIEW and action["payload_length"] > 300_000
    assert row["identity"] == "jane"
    assert len(rows[deep_id]["body"]) == browsing.BODY_PREVIEW
    assert whole_entry(store, big_id)["body"] == big
    assert whole_entry(store, deep_id)["body"] == deep
    assert browse(store, "clay", "development", Filters(event="e" * 5000), 10).rows[0]["id"] == big_id


def test_identity_names_the_object_when_an_action_is_about_one(store):
    (event_id,) = log_events(
        store,
        [(0, "live", "account.enriched", "processed", "{}", {"collection": "accounts", "id": "acme.com"})],
    )
    (row,) = browse(store, "clay", "development", Filters(), 10).rows
    assert row["id"] == event_id and row["identity"] == "accounts/acme.com"


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (Filters(), "ix_events_page"),
        (Filters(status="failed"), "ix_events_page_status"),
        (Filters(origin="replay"), "ix_events_page_origin"),
        (Filters(event="account.enriched"), "ix_events_page_event"),
    ],
)
def test_each_filter_reads_its_index_in_page_order(sqlite_url, filters, index):
    from sqlalchemy import select

    from workbench.store import Store, events

    store = Store(sqlite_url)
    try:
        query = (
            select(*browsing._list_columns())
            .where(*browsing._where("clay", "development", filters)[0])
            .order_by(events.c.received_at.desc(), events.c.id.desc())
            .limit(51)
        )
        sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
        with store.engine.connect() as conn:
            plan = " ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    finally:
        store.close()
    # The index, and no sort: a page reads its rows and stops.
    assert f"USING INDEX {index} " in plan and "TEMP B-TREE" not in plan, plan


def test_the_migrations_make_the_event_type_index(store):
    # Alembic cannot compare expression indexes, so the schema comparison does not see this one.
    query = {
        "sqlite": "SELECT sql FROM sqlite_master WHERE name = 'ix_events_page_event'",
        "postgresql": "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_events_page_event'",
    }[store.engine.dialect.name]
    with store.engine.connect() as conn:
        definition = conn.exec_driver_sql(query).scalar()
    assert definition is not None and "substr(" in definition.lower() and "200" in definition

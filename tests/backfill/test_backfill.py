import csv
import json

import duckdb
import pytest

from scripts.make_samples import write_rows
from workbench.backfill import Backfill, TableRows
from workbench.clay import ExportError, load_export
from workbench.config import load_config
from workbench.sinks.local import LocalSink

from .conftest import (
    IDENTIFY_AND_TRIGGER,
    LEADS,
    SAMPLES,
    batch_entries,
    config_with,
    email_of,
    export_rows,
    processed_rows,
    read_csv,
    rows,
    rows_in_batches,
    run,
    scalar,
    sha256_of,
)


def test_blank_emails_fail_with_the_parameter_and_path_and_the_rest_is_processed(store, tmp_path):
    source = export_rows(LEADS)
    blank = [n for n, r in enumerate(source, start=1) if email_of(r) is None]
    assert 0 < len(blank) < len(source)
    failures = tmp_path / "failures.csv"
    summary = run(store, failures=failures)
    assert summary.counts == {
        "applied": len(source) - len(blank),
        "unchanged": 0,
        "skipped": 0,
        "no_mapping": 0,
        "invalid": 0,
        "failed": len(blank),
        "queued": 0,
    }
    users = dict(rows(store, "SELECT id, data FROM local_users"))
    assert set(users) == {email_of(r) for r in source if email_of(r)}
    jane = next(r for r in source if email_of(r))
    data = json.loads(users[email_of(jane)])
    assert data["name"] == jane["Full Name"] and data["company_domain"] == jane["Company Domain"]
    with open(failures, encoding="utf-8", newline="") as f:
        failed = list(csv.DictReader(f))
    assert [int(r["_row_number"]) for r in failed] == blank
    for row in failed:
        assert row["_status"] == "failed"
        assert "param `id`: path `body.email` resolved to nothing" in row["_reason"]
        # The row as exported, ready to fix and re-import: multi-line and quoted cells intact.
        original = source[int(row["_row_number"]) - 1]
        assert {k: row[k] for k in original} == original
    # Failed rows keep whole entries; the applied ones are pointed at by their batches' entries.
    failed_bodies = rows(store, "SELECT body FROM events WHERE status = 'failed' ORDER BY received_at, id")
    assert len(failed_bodies) == len(blank)
    assert all(json.loads(body)["event"] == "lead.enriched" for (body,) in failed_bodies)
    applied = [n for n in range(1, len(source) + 1) if n not in blank]
    assert rows_in_batches(store) == applied
    assert processed_rows(store) == len(applied)
    assert {entry["sha256"] for entry in batch_entries(store)} == {sha256_of(LEADS)}


def test_a_second_run_changes_nothing_and_triggers_nothing_twice(store, tmp_path):
    config = config_with(tmp_path, mappings=IDENTIFY_AND_TRIGGER)
    first = run(store, config)
    users = rows(store, "SELECT id, data, updated_at FROM local_users ORDER BY id")
    runs = rows(store, "SELECT id, recipient FROM local_workflow_runs ORDER BY id")
    high = [r for r in export_rows(LEADS) if email_of(r) and int(r["ICP Score"]) >= 80]
    assert sorted(r[1] for r in runs) == sorted(email_of(r) for r in high) and runs
    second = run(store, config)
    assert second.counts["applied"] == 0
    assert second.counts["unchanged"] == first.counts["applied"]
    assert second.counts["failed"] == first.counts["failed"]  # failures are tried again, still failing
    assert rows(store, "SELECT id, data, updated_at FROM local_users ORDER BY id") == users
    assert rows(store, "SELECT id, recipient FROM local_workflow_runs ORDER BY id") == runs
    assert processed_rows(store) == first.counts["applied"]


def test_limit_then_rerun_completes_without_duplicates(store):
    first = run(store, limit=50)
    assert first.rows == 50
    rest = run(store)
    assert rest.counts["unchanged"] == first.counts["applied"]
    assert first.counts["applied"] + rest.counts["applied"] == scalar(
        store, "SELECT count(*) FROM local_users"
    )
    assert processed_rows(store) == scalar(store, "SELECT count(*) FROM local_users")


def test_a_row_repeated_in_the_export_runs_once(store, tmp_path):
    header = ["Work Email", "Full Name"]
    path = tmp_path / "dupes.csv"
    write_rows(path, header, [["a@x.io", "A"], ["b@x.io", "B"], ["a@x.io", "A"], ["a@x.io", "A2"]])
    summary = run(store, export=path, batch_size=2)
    assert (summary.counts["applied"], summary.counts["unchanged"]) == (3, 1)
    assert json.loads(rows(store, "SELECT data FROM local_users WHERE id = 'a@x.io'")[0][0])["name"] == "A2"


def test_the_configs_own_idempotency_key_is_used(store, tmp_path):
    config = config_with(tmp_path, idempotency={"key": "body.email", "window_hours": 1})
    first = run(store, config)
    keys = set(rows(store, "SELECT idempotency_key FROM events WHERE status = 'processed'"))
    assert keys == {(email_of(r),) for r in export_rows(LEADS) if email_of(r)}
    notes = rows(store, "SELECT DISTINCT idempotency_note FROM events WHERE status = 'failed'")
    assert notes == [("idempotency not applied: key path `body.email` resolved to nothing",)]
    assert run(store, config).counts["unchanged"] == first.counts["applied"]


def test_event_override_and_no_mapping(store, tmp_path):
    failures = tmp_path / "f.csv"
    summary = run(store, event="nothing.here", failures=failures)
    assert summary.counts["no_mapping"] == 200 and summary.rows == 200
    reasons = {r["_reason"] for r in read_csv(failures)}
    assert reasons == {
        "no active mapping for event `nothing.here` in environment `development`; "
        "nothing was done (add a mapping for it to act on it)"
    }
    assert scalar(store, "SELECT count(*) FROM local_users") == 0


def test_a_cell_that_cannot_be_coerced_makes_its_row_invalid(store, tmp_path):
    path = tmp_path / "scores.csv"
    write_rows(path, ["Work Email", "ICP Score"], [["a@x.io", "87"], ["b@x.io", "high"]])
    failures = tmp_path / "f.csv"
    summary = run(store, export=path, failures=failures)
    assert (summary.counts["applied"], summary.counts["invalid"]) == (1, 1)
    (row,) = read_csv(failures)
    assert row["Work Email"] == "b@x.io" and row["_status"] == "invalid"
    assert "column `ICP Score`" in row["_reason"] and "high" in row["_reason"]


@pytest.mark.parametrize("name", ["clay_header_only.csv", "clay_empty.csv"])
def test_exports_without_rows_process_nothing(store, name):
    summary = run(store, export=SAMPLES / name)
    assert summary.rows == 0 and scalar(store, "SELECT count(*) FROM events") == 0


def test_a_non_csv_file_is_refused_naming_the_line(store):
    with pytest.raises(ExportError, match="line 2"):
        run(store, export=SAMPLES / "not_a_clay_export.csv")
    assert scalar(store, "SELECT count(*) FROM events") == 0


@pytest.mark.parametrize("name", ["clay_bom_crlf.csv", "clay_lf.csv", "clay_duplicate_headers.csv"])
def test_a_loaded_table_backfills_like_its_csv(tmp_path, store, name):
    from workbench.store import Store

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    loaded = load_export(SAMPLES / name, con)
    cfg = load_config(config_with(tmp_path))
    other = Store(f"sqlite:///{tmp_path / 'other.sqlite'}")
    by_table = Backfill(cfg, "development", other, LocalSink(other)).run(
        TableRows(con, loaded.table), progress=False
    )
    by_csv = run(store, export=SAMPLES / name)
    assert by_table.counts == by_csv.counts
    assert rows(other, "SELECT id, data FROM local_users ORDER BY id") == rows(
        store, "SELECT id, data FROM local_users ORDER BY id"
    )
    other.close()
    con.close()


def test_duplicate_headers_reach_the_default_body(store, tmp_path):
    data = json.loads((config_with(tmp_path)).read_text())
    del data["clay"]
    data["environments"]["development"]["mappings"][0]["params"]["id"] = "body.email_2"
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(data))
    summary = run(store, path, export=SAMPLES / "clay_duplicate_headers.csv")
    assert summary.counts["applied"] == 2
    users = dict(rows(store, "SELECT id, data FROM local_users"))
    assert json.loads(users["jane.doe@acme.com"])["email"] == "jane@acme.com"
    assert json.loads(users["jane.doe@acme.com"])["zip_code"] == "00123"


def test_backfilled_events_read_back_through_the_store(store):
    run(store, export=SAMPLES / "clay_bom_crlf.csv", headers={"X-Table": "t1"})
    (event_id,) = rows(store, "SELECT id FROM events WHERE status = 'processed' ORDER BY id LIMIT 1")[0]
    entry = store.get_event(event_id)
    assert (
        entry["origin"] == "backfill" and entry["event"] == "lead.enriched" and entry["id"].startswith("evt_")
    )
    assert entry["headers"] == {"x-table": "t1"}
    body = json.loads(entry["body"])
    (action,) = entry["actions"]
    assert action["status"] == "success" and action["attempts"] == 1
    assert action["payload"]["id"] == body["email"] and action["payload"]["properties"] == body
    assert action["result"] == {"id": body["email"]}
    assert entry["received_at"].endswith("Z")
    assert store.list_events("clay", "development", status="processed", limit=1)[0]["origin"] == "backfill"


def test_backfilled_times_are_stored_as_live_events_store_them(store):
    """A whole second (no microseconds) is where SQLite's own default adapter and the store's
    column type write different text; every time column of a backfill uses the store's form."""
    from datetime import UTC, datetime

    from workbench.engine import SourceEvent

    whole_second = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    run(store, export=SAMPLES / "clay_bom_crlf.csv", clock=lambda: whole_second)
    store.record_received(SourceEvent(b"{}", {}, received_at=whole_second), "clay", "live")
    stored = {
        table: rows(store, f"SELECT DISTINCT {column} FROM {table}")
        for table, column in (
            ("events", "received_at"),
            ("events", "updated_at"),
            ("actions", "updated_at"),
            ("applied_payloads", "applied_at"),
        )
    }
    assert set(stored["events"]) == {("2026-03-04 05:06:07.000000",)}
    for table, values in stored.items():
        assert values == [("2026-03-04 05:06:07.000000",)], table


def test_a_run_leaves_the_pooled_connections_as_it_found_them(store):
    """Whatever a run tunes on its connection, the pool hands out afterwards connections as they
    were before (an embedded receiver in the same kernel may take one next)."""
    pragmas = ("cache_size", "wal_autocheckpoint", "synchronous", "temp_store")

    def settings(conn):
        dbapi = conn.connection.dbapi_connection
        return tuple(dbapi.execute(f"PRAGMA {name}").fetchone()[0] for name in pragmas)

    with store.engine.connect() as c:
        usual = settings(c)
    summary = run(store, batch_size=7)
    assert summary.rows > 3 * 7  # several batches
    held = [store.engine.connect() for _ in range(3)]  # every pooled connection, and then some
    try:
        after = {settings(c) for c in held}
    finally:
        for c in held:
            c.close()
    assert after == {usual}


@pytest.mark.parametrize("how", ["completed", "interrupted", "frozen before"])
def test_a_run_puts_the_garbage_collector_back_as_it_was(store, how):
    """Whatever a run does with the garbage collector, afterwards (Ctrl-C included) its thresholds
    are as they were, the objects alive before are scanned again, and what the process froze
    itself stays frozen."""
    import gc

    from sqlalchemy import event

    def scanned(thing) -> bool:  # in one of the collector's generations, not frozen
        return any(o is thing for o in gc.get_objects())

    alive = [["a container the collector tracks"]]
    inserts = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def interrupt(conn, cursor, statement, parameters, context, executemany):
        if how == "interrupted" and statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            inserts.append(statement)
            if len(inserts) == 2:
                raise KeyboardInterrupt

    before = gc.get_threshold()
    if how == "frozen before":
        gc.freeze()
    try:
        summary = run(store, batch_size=7)
        after = gc.get_threshold(), scanned(alive)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert summary.interrupted is (how == "interrupted")
    assert after == (before, how != "frozen before")


def test_batches_leave_no_cyclic_garbage_behind(store, tmp_path):
    """What a batch leaves is freed by reference counting alone: the collector, which a run lets
    wait BACKFILL_GC_THRESHOLD allocations, finds nothing to free however many batches ran (a
    statement built per batch held its rows' keys in cycles, and a big export's memory grew)."""
    import gc

    from workbench.store import Store

    warm = Store(f"sqlite:///{tmp_path / 'warm.sqlite'}")  # first-use caches make a few cycles once
    try:
        run(warm, batch_size=5)
    finally:
        warm.close()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        summary = run(store, batch_size=1)
        found = gc.collect()
        kinds = sorted({type(o).__name__ for o in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    # A cycle left per batch would show as thousands of objects (1,820 for 200 one-row batches
    # when a statement was built per batch); first-use caches of the libraries below make a few
    # dozen at most, whatever the number of batches.
    assert summary.rows > 100
    assert found < summary.rows // 2, (found, kinds)


def test_a_full_store_stops_the_backfill_saying_why_without_the_batchs_rows(store):
    """The error names the database's reason and the first row not kept; SQLAlchemy's message
    would carry the statement and a batch of rows' parameters."""
    from sqlalchemy import event

    from workbench.store import StoreError

    store.engine.dispose()

    @event.listens_for(store.engine, "connect")
    def cap(dbapi_connection, _record):  # no room beyond the tables (as on a full disk)
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    with pytest.raises(StoreError) as caught:
        run(store)
    message = str(caught.value)
    assert "database or disk is full (sqlite3.OperationalError)" in message, message
    assert "the batch from row 1 was not kept, run the same backfill again" in message, message
    assert "INSERT" not in message and "parameters" not in message and "@" not in message, message
    assert scalar(store, "SELECT count(*) FROM events") == 0


def test_users_merge_as_the_local_sink_merges_them(store, tmp_path):
    """The batched user writes give the very records LocalSink gives, row by row."""
    from workbench.engine import Engine, SourceEvent
    from workbench.store import Store

    path = tmp_path / "merge.csv"
    header = ["Work Email", "Full Name", "Phone Number", "Company Name"]
    write_rows(
        path,
        header,
        [
            ["a@x.io", "A", "+1 1", "Acme"],
            ["b@x.io", "B", "", "Globex"],
            ["a@x.io", "A Two", "", ""],
            ["a@x.io", "", "+1 3", "Initech"],
        ],
    )
    run(store, export=path, batch_size=3)
    direct = Store(f"sqlite:///{tmp_path / 'direct.sqlite'}")
    cfg = load_config(config_with(tmp_path))
    engine = Engine(cfg, "development", LocalSink(direct))
    from workbench.clay import row_to_body

    for row in read_csv(path):
        engine.process(SourceEvent(row_to_body(row, cfg.body_template), origin="backfill"))
    batched = rows(store, "SELECT id, data FROM local_users ORDER BY id")
    one_by_one = rows(direct, "SELECT id, data FROM local_users ORDER BY id")
    assert [(i, json.loads(d)) for i, d in batched] == [(i, json.loads(d)) for i, d in one_by_one]
    assert len(batched) == 2
    direct.close()


@pytest.mark.postgres
def test_backfill_on_postgresql(postgres_url, tmp_path):
    from workbench.store import Store

    pg = Store(postgres_url)
    try:
        config = config_with(tmp_path, mappings=IDENTIFY_AND_TRIGGER)
        first = run(pg, config)
        assert first.counts["applied"] > 0 and first.counts["failed"] > 0
        second = run(pg, config)
        assert second.counts["unchanged"] == first.counts["applied"] and second.counts["applied"] == 0
        assert scalar(pg, "SELECT count(*) FROM local_users") == first.counts["applied"]
        (event_id,) = rows(pg, "SELECT id FROM events WHERE status = 'processed' LIMIT 1")[0]
        assert pg.get_event(event_id)["actions"][0]["status"] == "success"
    finally:
        pg.close()


def test_big_batches_check_their_keys_in_chunks(store, tmp_path):
    from scripts.make_samples import write_export

    path = tmp_path / "big.csv"
    write_export(path, 1200, seed=9)
    first = run(store, export=path, batch_size=5000)
    second = run(store, export=path, batch_size=5000)
    assert second.counts["unchanged"] == first.counts["applied"] > 1000


def test_a_backfill_made_without_a_sink_only_plans(tmp_path):
    """bench/backfill.py times the rows' own work with no sink and no store."""
    from pathlib import Path

    config = load_config(Path(__file__).resolve().parents[2] / "mappings" / "clay.json")
    job = Backfill(config, "development", store=None, sink=None)
    assert job.missing_columns(["Work Email"]) == [c for c in job.missing_columns([]) if c != "Work Email"]

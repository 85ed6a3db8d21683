"""Alembic migrations: the shipped revisions build exactly the tables the code declares, on both engines."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from datetime import datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect, select

from workbench.cli import main
from workbench.store import Store, actions, events, metadata
from workbench.store.migrate import VERSION_TABLE, alembic_config, current, head, upgrade


def schema_differences(store: Store) -> list:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        return compare_metadata(context, metadata)


def test_migrated_schema_equals_the_declared_tables(store):
    assert schema_differences(store) == []
    with store.engine.connect() as conn:
        assert current(conn) == head()


def test_an_empty_database_differs_from_the_declared_tables(store_url):
    # The comparison above can fail: on a database with no tables it lists every one.
    store = Store(store_url, create=False)
    try:
        added = {diff[1].name for diff in schema_differences(store) if diff[0] == "add_table"}
        assert added == set(metadata.tables)
    finally:
        store.close()


def test_a_store_at_the_newest_revision_migrates_nothing(store):
    assert upgrade(store.engine) is False


def test_tables_made_before_migrations_are_adopted(store_url):
    """A database created by `create_all` (no version table) is stamped as the baseline, not re-created."""
    store = Store(store_url, create=False)
    try:
        metadata.create_all(store.engine)
        with store.engine.connect() as conn:
            assert current(conn) is None
        assert upgrade(store.engine) is True
        with store.engine.connect() as conn:
            assert current(conn) == head()
        assert schema_differences(store) == []
    finally:
        store.close()


def _open_store(url: str, start, results) -> None:
    start.wait()
    try:
        Store(url).close()
        results.put("ok")
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put(f"{type(exc).__name__}: {exc}")


def test_stores_starting_at_once_migrate_once(store_url):
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_open_store, args=(store_url, start, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
    assert sorted(results.get(timeout=10) for _ in procs) == ["ok"] * 4
    store = Store(store_url, create=False)
    try:
        assert schema_differences(store) == []
        assert VERSION_TABLE in inspect(store.engine).get_table_names()
    finally:
        store.close()


def test_migrate_command(store_url):
    result = CliRunner().invoke(main, ["migrate", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert f'"revision": "{head()}"' in result.output
    again = CliRunner().invoke(main, ["migrate", "--store", store_url])
    assert '"migrated": false' in again.output


def test_triggers_that_may_have_run_keep_the_key_they_were_sent_under(store_url):
    """Revision 0002 logs each trigger's Idempotency-Key; the ones Knock may have run (queued, or
    given up after retries) get the key they went under before it, so their next attempt sends it
    again, while refused ones are free to take a new key."""
    store = Store(store_url, create=False)
    now = datetime(2026, 3, 1, 9, 0)
    trigger = "4:workflows_trigger"
    logged = {  # event id: (origin, action, status, error)
        "evt_queued": ("live", "workflows_trigger", "queued", "Knock did not answer"),
        "evt_gave_up": ("live", "workflows_trigger", "failed", "gave up after 10 attempts; last error: 503"),
        "evt_refused": ("live", "workflows_trigger", "failed", "Knock answered 422 to workflows_trigger"),
        "evt_backfilled": ("backfill", "workflows_trigger", "queued", "Knock answered 500"),
        "evt_identify": ("live", "users_identify", "queued", "Knock answered 500"),
    }
    try:
        with store.engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0001")
            for event_id, (origin, action, status, error) in logged.items():
                conn.execute(
                    events.insert().values(
                        id=event_id,
                        received_at=now,
                        source="clay",
                        environment="development",
                        origin=origin,
                        event="lead.enriched",
                        status=status,
                        body="{}",
                        idempotency_key="row-7",
                        replays=0,
                        updated_at=now,
                    )
                )
                conn.execute(
                    actions.insert().values(
                        event_id=event_id,
                        position=0,
                        mapping=trigger,
                        action=action,
                        status=status,
                        error=error,
                        attempts=2,
                        updated_at=now,
                    )
                )
        assert upgrade(store.engine) is True
        with store.engine.connect() as conn:
            keys = dict(conn.execute(select(actions.c.event_id, actions.c.request_key)).all())
        identity = json.dumps(["clay", "development", "lead.enriched", "row-7"])
        assert keys == {
            "evt_queued": f"evt_queued:{trigger}",
            "evt_gave_up": f"evt_gave_up:{trigger}",
            "evt_refused": None,
            "evt_backfilled": "row_" + hashlib.sha256(f"{identity}\n{trigger}".encode()).hexdigest(),
            "evt_identify": None,
        }
        assert schema_differences(store) == []
    finally:
        store.close()

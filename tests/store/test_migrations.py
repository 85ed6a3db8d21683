"""Alembic migrations: the shipped revisions build exactly the tables the code declares, on both engines."""

from __future__ import annotations

import multiprocessing

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect

from workbench.cli import main
from workbench.store import Store, metadata
from workbench.store.migrate import VERSION_TABLE, current, head, upgrade


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

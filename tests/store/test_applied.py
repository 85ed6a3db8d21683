"""The sync's memory of backfilled rows: in `applied_rows`, or on the one target a row applied
(`applied_payloads.row_config`); either way forgotten as soon as a target changes hands."""

from __future__ import annotations

from datetime import UTC, datetime

from workbench.store.applied import forget_rows, mark_rows, remember, remember_rows, valid_rows

SCOPE = ("clay", "development")
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def valid(store, digest="cfg1"):
    with store.engine.connect() as conn:
        return valid_rows(conn, SCOPE, digest)


def write(store, fn, *args):
    with store.engine.begin() as conn:
        fn(conn, SCOPE, *args)


def test_a_row_on_its_target_is_valid_for_its_config_until_the_target_changes_hands(store):
    write(store, remember, [("t1", "h1", "e1", "fp1", "cfg1"), ("t2", "h2", "e1", "fp2", None)], NOW)
    write(store, remember, [("t3", "h3", "e1", "fp3"), ("t4", "h4", "e1", "fp3")], NOW)
    write(store, remember_rows, "cfg1", [("fp2", "done"), ("fp3", "done"), ("fp9", "skipped")])
    assert valid(store) == {"fp1": "done", "fp2": "done", "fp3": "done", "fp9": "skipped"}
    assert valid(store, "cfg2") == {}  # under another config no row is known

    # A live row applies t1: the row that held it is forgotten, whichever way it was remembered.
    write(store, remember, [("t1", "h1b", "e2"), ("t3", "h3b", "e2")], NOW)
    assert valid(store) == {"fp2": "done", "fp9": "skipped"}

    # Another backfilled row found t2 unchanged and holds it now, on the target.
    write(store, mark_rows, [("t2", "fp5", "cfg1")])
    assert valid(store) == {"fp5": "done", "fp9": "skipped"}

    # The same row applied again under another config: remembered under that one only.
    write(store, remember, [("t2", "h2b", "e3", "fp5", "cfg2")], NOW)
    assert valid(store) == {"fp9": "skipped"} and valid(store, "cfg2") == {"fp5": "done"}


def test_a_run_of_another_config_forgets_the_rows_table_not_what_targets_still_hold(store):
    """`forget_rows` clears `applied_rows` of other configs; a target still holding a row's
    payload under its config keeps it valid for that config (nothing applied it since)."""
    write(store, remember, [("t1", "h1", "e1", "fp1", "cfg1"), ("t2", "h2", "e1", "fp2")], NOW)
    write(store, remember_rows, "cfg1", [("fp2", "done")])
    write(store, forget_rows, "cfg2")
    assert valid(store) == {"fp1": "done"}


def test_deleting_a_target_forgets_the_row_it_held(store):
    from sqlalchemy import delete

    from workbench.store.schema import applied_payloads

    write(store, remember, [("t1", "h1", "e1", "fp1", "cfg1")], NOW)
    with store.engine.begin() as conn:
        conn.execute(delete(applied_payloads).where(applied_payloads.c.target == "t1"))
    assert valid(store) == {}

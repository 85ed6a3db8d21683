"""A store that cannot be written (a full disk, a refusing database): the reply says what the
database said, without SQL, and says whether the row was kept."""

from __future__ import annotations

import sqlite3

from sqlalchemy import event, text

from .conftest import DEFAULT_CONFIG, auth, build_app, lead

DEV = "/sources/clay/development"


def full_after_now(engine):
    """From the next connection on, the database may not grow past the pages it has now
    (SQLite then answers "database or disk is full", as on a full disk); returns the listener
    that does it."""
    engine.dispose()

    def cap(dbapi_connection, _record):
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", cap)
    return cap


def logged_emails(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT json_extract(body, '$.email') FROM events")}


def test_a_full_store_refuses_the_row_saying_why_and_keeps_nothing(tmp_path):
    db = tmp_path / "events.sqlite"
    app = build_app(DEFAULT_CONFIG, f"sqlite:///{db}", RETRY_INTERVAL=None)
    client = app.test_client()
    assert client.post(DEV, json=lead(email="first@acme.com"), headers=auth()).status_code == 200
    engine = app.extensions["workbench"].store.engine
    cap = full_after_now(engine)

    refused = None
    for n in range(300):  # the free pages fill up within a few rows
        row = lead(email=f"lead{n}@acme.com")
        reply = client.post(DEV, json=row, headers=auth())
        if reply.json["status"] == "store_error":
            refused = row
            break
    assert refused is not None, "the store never filled up"
    assert reply.status_code == 500
    error = reply.json["error"]
    assert "database or disk is full (sqlite3.OperationalError)" in error, error
    assert "nothing of this row was kept" in error and "send it again" in error, error
    assert "INSERT" not in error and "[SQL" not in error and "Jane" not in error, error
    assert refused["email"] not in logged_emails(db)

    # Room again (new connections without the cap): the same row goes in.
    event.remove(engine, "connect", cap)
    engine.dispose()
    again = client.post(DEV, json=refused, headers=auth())
    assert (again.status_code, again.json["status"]) == (200, "processed")
    assert refused["email"] in logged_emails(db)


def test_a_store_failure_while_processing_names_the_databases_reason(tmp_path):
    db = tmp_path / "events.sqlite"
    app = build_app(DEFAULT_CONFIG, f"sqlite:///{db}", RETRY_INTERVAL=None)
    store = app.extensions["workbench"].store
    with store.engine.begin() as conn:  # the event goes in; its action log cannot
        conn.execute(
            text(
                "CREATE TRIGGER refuse_actions BEFORE INSERT ON actions "
                "BEGIN SELECT RAISE(ABORT, 'no room for actions'); END"
            )
        )
    reply = app.test_client().post(DEV, json=lead(email="kept@acme.com"), headers=auth())
    assert reply.status_code == 500
    body = reply.json
    assert body["status"] == "error"
    assert body["error"] == (
        "the event log could not record how the row was processed: no room for actions "
        f"(sqlite3.IntegrityError); the event is logged as {body['id']} and can be replayed once "
        "the store can be written"
    )
    assert "kept@acme.com" in logged_emails(db)

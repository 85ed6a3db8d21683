"""PostgreSQL down: a quick 503 JSON answer instead of a hang, nothing written, recovery on its own."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import pytest

from workbench.errors import StoreUnavailable
from workbench.receiver import create_app
from workbench.store import Store

from .conftest import ENVIRON, INGEST, SECRET, row, write_config

ADMIN_TOKEN = "admin-token-db-down"
# No answer from the database may hold a request this long (connect timeout: 5 s).
pytestmark = pytest.mark.timeout(60)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_client(tmp_path, store_url):
    app = create_app(
        {
            "CONFIG_PATHS": [write_config(tmp_path / "clay.json")],
            "STORE_URL": store_url,
            "ENVIRON": ENVIRON,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "TESTING": True,
        }
    )
    return app.test_client()


def post(client, body=None, secret=SECRET):
    body = row(uuid.uuid4().hex) if body is None else body
    return client.post(INGEST, data=json.dumps(body), headers={"Authorization": f"Bearer {secret}"})


def test_no_database_server_at_all_is_a_503_that_says_so(tmp_path):
    url = f"postgresql+psycopg://workbench@127.0.0.1:{closed_port()}/workbench"
    with pytest.raises(StoreUnavailable, match="unavailable"):
        Store(url)
    client = make_client(tmp_path, url)  # a receiver starting during the outage still answers
    response = post(client)
    assert response.status_code == 503
    assert response.is_json and response.json["status"] == "unavailable"
    assert "try again" in response.json["error"] and "Connection refused" in response.json["error"]
    assert response.headers["Retry-After"] == "5"
    logs = client.get(f"{INGEST}/logs", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert logs.status_code == 503 and logs.json["status"] == "unavailable"
    # Verification needs no database: a wrong secret is still told so.
    assert post(client, secret="wrong").status_code == 401


@pytest.mark.postgres
def test_receiver_answers_503_while_postgres_is_down_and_recovers_by_itself(tmp_path, postgres_server):
    url = postgres_server.create_database()
    client = make_client(tmp_path, url)
    before = post(client)
    assert before.status_code == 200, before.json
    postgres_server.stop()
    try:
        during = [post(client) for _ in range(3)]
    finally:
        postgres_server.start()
    assert [r.status_code for r in during] == [503] * 3
    assert all(r.json["status"] == "unavailable" for r in during)
    after = post(client)
    assert after.status_code == 200, after.json
    store = Store(url)
    try:
        logged = store.list_events("clay", "development")
    finally:
        store.close()
    # Nothing of the refused requests was written; the two answered ones are there, processed.
    assert sorted(e["id"] for e in logged) == sorted([before.json["id"], after.json["id"]])
    assert {e["status"] for e in logged} == {"processed"}


@pytest.mark.postgres
def test_a_connection_the_server_ends_mid_batch_is_an_outage(postgres_server):
    """A server that ends a connection (a restart, an administrator) while a multi-row statement
    is being sent is an outage (503), and the pool drops the connection."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from workbench.store.applied import remember

    store = Store(postgres_server.create_database())
    try:
        rows = [(f"t{i}", "h", "evt_x") for i in range(20_000)]
        with store.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            conn.commit()

            def terminate():  # while the batch is being sent
                time.sleep(0.05)
                with store.engine.connect() as other:
                    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    other.commit()

            killer = threading.Thread(target=terminate)
            killer.start()
            try:
                with pytest.raises(StoreUnavailable, match="unavailable"), conn.begin():
                    remember(conn, ("clay", "development"), rows, datetime(2026, 1, 1, tzinfo=UTC))
            finally:
                killer.join()
        # The pool dropped the dead connection: the next one works.
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        store.close()


def test_the_server_gone_is_found_behind_another_error():
    """psycopg may report a shutdown that lands mid-pipeline as "cannot exit pipeline mode while
    busy", which SQLAlchemy does not take for a disconnect: the server's own error is in its chain
    (as a receiver logged it while PostgreSQL restarted under load)."""
    from psycopg import OperationalError, errors

    from workbench.store.db import server_gone

    try:
        try:
            raise errors.AdminShutdown("terminating connection due to administrator command")
        except errors.AdminShutdown:
            raise OperationalError("cannot exit pipeline mode while busy")  # noqa: B904 (as psycopg does)
    except OperationalError as exc:
        assert server_gone(exc)
    assert not server_gone(OperationalError("cannot exit pipeline mode while busy"))
    assert not server_gone(errors.UniqueViolation("duplicate key"))
    assert server_gone(errors.lookup("08006")("connection failure"))

"""The receiver on PostgreSQL: same code path, through gunicorn's two workers."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from .conftest import Served, auth, lead, receiver_config, write_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
DEV = "/sources/clay/development"


def test_status_rows_logs_and_concurrent_duplicates(tmp_path, postgres_url):
    config = write_config(tmp_path / "clay.json", receiver_config())
    server = Served(config, postgres_url, workers=2, log=tmp_path / "serve.log")
    try:
        ok = server.post(DEV, lead(), auth())
        failed = server.post(DEV, lead(email=""), auth())
        invalid = server.post(DEV, b"[1]", auth())
        rejected = server.post(DEV, lead(), auth("wrong"))
        assert [r.status_code for r in (ok, failed, invalid, rejected)] == [200, 422, 400, 401]
        events = server.get(f"{DEV}/logs").json()["events"]
        assert sorted(e["id"] for e in events) == sorted(r.json()["id"] for r in (ok, failed, invalid))

        row = {**lead(), "row_id": uuid.uuid4().hex}
        barrier = Barrier(6)

        def send(_):
            barrier.wait()
            return server.post("/sources/clay/dedupe", row, auth()).json()["status"]

        with ThreadPoolExecutor(6) as pool:
            statuses = sorted(pool.map(send, range(6)))
        assert statuses == ["idempotent"] * 5 + ["processed"]
    finally:
        server.stop()

"""Idempotency keys: atomic reservation (threads and processes), windows, only successes remembered."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from workbench.store import Store, idempotency_keys

SCOPE = ("clay", "development", "lead.enriched")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY = 24 * 3600


def test_second_reservation_of_a_key_is_refused(store):
    port = store.idempotency()
    assert port.reserve(SCOPE, "row-1", T0, DAY)
    assert not port.reserve(SCOPE, "row-1", T0, DAY)
    # The scope is source, environment, event type and key.
    assert port.reserve(("clay", "development", "lead.high_intent"), "row-1", T0, DAY)
    assert port.reserve(("clay", "production", "lead.enriched"), "row-1", T0, DAY)
    assert port.reserve(SCOPE, "row-2", T0, DAY)


def test_only_successes_are_remembered(store):
    port = store.idempotency()
    assert port.reserve(SCOPE, "row-1", T0, DAY)
    port.release(SCOPE, "row-1")  # the execution did not succeed
    assert port.reserve(SCOPE, "row-1", T0, DAY)
    port.complete(SCOPE, "row-1", T0)
    port.release(SCOPE, "row-1")  # a remembered success is never released
    assert not port.reserve(SCOPE, "row-1", T0 + timedelta(hours=23), DAY)


def test_a_success_is_remembered_for_the_window_then_taken_over(store):
    port = store.idempotency()
    assert port.reserve(SCOPE, "row-1", T0, 3600)
    port.complete(SCOPE, "row-1", T0)
    assert not port.reserve(SCOPE, "row-1", T0 + timedelta(minutes=59), 3600)
    assert port.reserve(SCOPE, "row-1", T0 + timedelta(minutes=61), 3600)


def test_a_reservation_whose_process_died_is_taken_over(store):
    port = store.idempotency()
    assert port.reserve(SCOPE, "row-1", T0, DAY)  # never completed nor released
    assert not port.reserve(SCOPE, "row-1", T0 + timedelta(minutes=5), DAY)
    assert port.reserve(SCOPE, "row-1", T0 + timedelta(hours=1), DAY)


def test_reservation_inside_a_transaction_rolls_back_with_it(store):
    with store.engine.connect() as conn:
        assert store.idempotency(conn).reserve(SCOPE, "row-1", T0, DAY)
        conn.rollback()
    assert store.idempotency().reserve(SCOPE, "row-1", T0, DAY)


def test_threads_racing_on_one_key_reserve_it_once(store):
    winners = []
    barrier = threading.Barrier(8)

    def race():
        port = store.idempotency()
        barrier.wait()
        if port.reserve(SCOPE, "row-1", T0, DAY):
            winners.append(threading.get_ident())

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(idempotency_keys.c.key)).scalars().all() == ["row-1"]


def test_a_claim_names_its_event_and_is_found_again_by_it(store):
    port = store.idempotency()
    assert port.claim(SCOPE, "row-1", T0, 3600, "evt_a")
    assert port.claim(SCOPE, "row-1", T0, 3600, "evt_a")  # the same event, after a crash
    assert not port.claim(SCOPE, "row-1", T0 + timedelta(minutes=59), 3600, "evt_b")
    assert not port.reserve(SCOPE, "row-1", T0, 3600)  # a claim is a remembered success
    assert port.claim(SCOPE, "row-1", T0 + timedelta(hours=1), 3600, "evt_b")  # expired: taken over
    assert not port.claim(SCOPE, "row-1", T0 + timedelta(hours=1), 3600, "evt_a")
    assert port.reserve(SCOPE, "row-2", T0, DAY)
    assert not port.claim(SCOPE, "row-2", T0, DAY, "evt_c")  # reserved by the ordinary path
    with store.engine.connect() as conn:
        rows = conn.execute(select(idempotency_keys.c.key, idempotency_keys.c.event_id)).all()
    assert sorted(rows) == [("row-1", "evt_b"), ("row-2", None)]


def test_threads_racing_to_claim_one_key_claim_it_once(store):
    winners = []
    barrier = threading.Barrier(8)

    def race(n):
        port = store.idempotency()
        barrier.wait()
        if port.claim(SCOPE, "row-1", T0, DAY, f"evt_{n}"):
            winners.append(n)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def _reserve_keys(url, keys, start, results):
    store = Store(url)
    port = store.idempotency()
    start.wait()
    won = [key for key in keys if port.reserve(SCOPE, key, T0, DAY)]
    results.put(won)
    store.close()


def test_processes_racing_on_the_same_keys_reserve_each_once(store_url, store):
    ctx = multiprocessing.get_context("spawn")
    keys = [f"row-{i}" for i in range(40)]
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_reserve_keys, args=(store_url, keys, start, results)) for _ in range(3)]
    for p in procs:
        p.start()
    start.set()
    won = [key for _ in procs for key in results.get(timeout=120)]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(won) == sorted(keys)

"""Does `store/fast.py` pay? The same writes through it and through plain SQLAlchemy Core.

`store/fast.py` runs the hot statements on the driver's cursor (`Prepared`, `insert_many`). The
anchor is SQLAlchemy Core doing the same writes (`fast.plain()`): `conn.execute(statement,
params)` for single rows, `conn.execute(table.insert(), rows)` (Core's executemany, with
insertmanyvalues where the dialect uses it) for batches. Both run in this one process on SQLite files (the default
store), shaped as in production:

- live: the local sink's `users_identify` (read the user, insert it or merge into it), one
  transaction a request, half of them new users and half known ones;
- batch: a backfill batch of `--batch` rows (one `users_identify` each, new users): the log's
  events and actions (`Store.record_processed`) and the users (`sinks.batched.BatchedUsers`),
  in one transaction.

Each side runs `--rounds` times, alternating; the medians are printed with the ratio
Core / fast (above 1.0: the bypass is faster by that factor).

    .venv/bin/python bench/sql.py [--requests 2000] [--batch 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from workbench.engine import ActionRequest, ActionResult, Outcome, SourceEvent, new_event_ids  # noqa: E402
from workbench.sinks.batched import BatchedUsers  # noqa: E402
from workbench.sinks.local import LocalSink  # noqa: E402
from workbench.store import Store, fast  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def profile(n: int) -> dict:
    return {
        "id": f"lead{n}@company{n % 997}.com",
        "name": f"Lead Number {n}",
        "email": f"lead{n}@company{n % 997}.com",
        "phone_number": f"+1 415 555 {n % 10000:04d}",
        "properties": {"company": f"Company {n % 997}", "title": "Head of Growth", "icp_score": n % 100},
    }


def live(store: Store, requests: int, start: int) -> float:
    """`requests` users_identify through the local sink, a transaction each; half are known."""
    sink = LocalSink(store, clock=lambda: NOW)
    known = requests // 2
    with store.transaction() as conn:  # the known half, written beforehand
        bound = sink.bind(conn)
        for n in range(start, start + known):
            bound.apply(ActionRequest("users_identify", profile(n), "evt", "m0"))
    order = [
        n
        for pair in zip(range(start, start + known), range(start + known, start + requests), strict=False)
        for n in pair
    ]
    began = time.perf_counter()
    for n in order:
        with store.transaction() as conn:
            sink.bind(conn).apply(ActionRequest("users_identify", profile(n), "evt", "m0"))
    return time.perf_counter() - began


def batch(store: Store, size: int, start: int) -> float:
    """One backfill batch of new users: the users, then the log's events and actions."""
    ids = new_event_ids(size, NOW)
    done = []
    for i, event_id in enumerate(ids):
        payload = profile(start + i)
        body = {"event": "lead.enriched", **{k: v for k, v in payload.items() if k != "properties"}}
        event = SourceEvent(body, origin="backfill", id=event_id, received_at=NOW)
        result = ActionResult(
            "users_identify", "success", "m0", payload=payload, result={"id": payload["id"]}
        )
        done.append((event, "clay", "development", Outcome("processed", "lead.enriched", [result])))
    began = time.perf_counter()
    with store.transaction() as conn:
        users = BatchedUsers(LocalSink(store, conn, clock=lambda: NOW), conn)
        users.prefetch([outcome.actions[0].payload["id"] for *_, outcome in done])
        for event, *_, outcome in done:
            users.apply(ActionRequest("users_identify", outcome.actions[0].payload, event.id, "m0"))
        users.flush()
        store.record_processed(conn, done, NOW, remember_applied=False)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {path: Store(f"sqlite:///{tmp}/{path}.sqlite") for path in ("fast", "core")}
        start = 0
        for round_ in range(args.rounds + 1):  # the first round warms up
            for path in ("fast", "core") if round_ % 2 else ("core", "fast"):
                with fast.plain() if path == "core" else nullcontext():
                    seconds = (
                        live(stores[path], args.requests, start),
                        batch(stores[path], args.batch, start + args.requests),
                    )
                if round_:
                    for kind, value in zip(("live", "batch"), seconds, strict=True):
                        times.setdefault((kind, path), []).append(value)
            start += args.requests + args.batch
        for store in stores.values():
            store.close()
    print(f"SQLite, {args.rounds} rounds, medians")
    for kind, what in (
        ("live", f"{args.requests} users_identify, one transaction each (local sink)"),
        ("batch", f"a batch of {args.batch} rows: users, events, actions (backfill)"),
    ):
        bypass, core = (statistics.median(times[(kind, p)]) for p in ("fast", "core"))
        count = args.requests if kind == "live" else args.batch
        print(f"{kind}: {what}")
        print(f"  store/fast.py:     {count / bypass:>9,.0f} rows/s")
        print(f"  SQLAlchemy Core:   {count / core:>9,.0f} rows/s")
        print(f"  ratio Core/fast (time): {core / bypass:.2f}x")


if __name__ == "__main__":
    main()

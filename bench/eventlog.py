"""Time the event-log page at a million events: each kind of page against the 100 ms target.

Fills a SQLite event log with `--events` events (default 1,000,000; Clay rows of about 600 bytes,
one action each; statuses, event types and origins mixed as a live log has them: 5% failed, 1%
invalid, a third backfilled, 1% replays) and then asks the receiver's app (Flask's test client,
so the whole request: admin token, queries, template) for each kind of page: the newest events,
each filter, a time range, a search for a common and for a rare text, a page deep in the log
(`before` a cursor half-way down), the page before it (`after`), one whole entry, and the count
a "replay all failed" confirmation shows. Each is run `--runs` times; the median is printed with
its ratio to the 100 ms target (below 1.0 meets it).

    .venv/bin/python bench/eventlog.py [--events 1000000] [--runs 7] [--store PATH] [--postgres]

The filled SQLite store is kept (default under the system's temp folder) and reused when it
already holds `--events` events, so a second run times the pages only. `--postgres` fills and
times a database on a private PostgreSQL server instead (started for the run, then removed).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from workbench.engine import ActionResult, Outcome, SourceEvent, new_event_ids  # noqa: E402
from workbench.receiver import create_app  # noqa: E402
from workbench.store import Store, events  # noqa: E402

TARGET_SECONDS = 0.100
ADMIN_TOKEN = "bench-admin-token"
PAGE = "/sources/clay/development"
BATCH = 5000
START = datetime(2026, 11, 1, tzinfo=UTC)
CONFIG = {
    "source": "clay",
    "event_type_path": "body.event",
    "environments": {
        "development": {
            "signing_secrets": [{"$env": "BENCH_SECRET"}],
            "sink": "dry-run",
            "mappings": [
                {"event": "lead.enriched", "action": "users_identify", "params": {"id": "body.email"}},
                {"event": "account.enriched", "action": "users_identify", "params": {"id": "body.email"}},
            ],
        }
    },
}


def _body(n: int) -> str:
    return json.dumps(
        {
            "event": "lead.enriched",
            "email": f"lead{n}@company{n % 9973}.com",
            "full_name": f"Lead Number {n}",
            "company": f"Company {n % 9973}",
            "title": "Head of Growth",
            "linkedin_url": f"https://www.linkedin.com/in/lead-{n}",
            "icp_score": str(n % 100),
            "notes": "Enriched by Clay: waterfall email, company size, funding stage, tech stack.",
            "row_id": f"row_{n}",
        }
    )


def fill(store: Store, total: int) -> None:
    """`total` events over 30 days, written a batch per transaction as the backfill writes them."""
    step = timedelta(days=30) / total
    done = 0
    started = time.monotonic()
    while done < total:
        count = min(BATCH, total - done)
        at = START + step * done
        ids = new_event_ids(count, at)
        batch = []
        for i, event_id in enumerate(ids):
            n = done + i
            origin = "replay" if n % 100 == 7 else "backfill" if n % 3 == 1 else "live"
            event_type = "account.enriched" if n % 10 == 3 else "lead.enriched"
            event = SourceEvent(_body(n), {"content-type": "application/json"}, origin=origin, id=event_id)
            event.received_at = at + step * i
            if n % 100 == 42:
                outcome = Outcome(
                    "invalid", None, error="body is not JSON: Expecting value at line 1 column 1"
                )
            elif n % 20 == 5:
                error = "param `id`: path `body.email` resolved to nothing"
                result = ActionResult("users_identify", "failed", "m0", payload={"id": None}, error=error)
                outcome = Outcome("failed", event_type, actions=[result])
            else:
                payload = {"id": f"lead{n}@company{n % 9973}.com"}
                result = ActionResult("users_identify", "success", "m0", payload=payload, result=payload)
                outcome = Outcome("processed", event_type, actions=[result])
            batch.append((event, "clay", "development", outcome))
        with store.transaction() as conn:
            store.record_processed(conn, batch, START)
        done += count
        if done % 100_000 == 0 or done == total:
            print(f"  filled {done:,} events ({time.monotonic() - started:.0f} s)", file=sys.stderr)


def time_page(client, url: str, runs: int) -> tuple[float, int]:
    headers = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()}
    seconds, size = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(
                f"{url} answered {response.status_code}: {response.get_data(as_text=True)[:300]}"
            )
        size = len(response.get_data())
    return statistics.median(seconds), size


def open_store(args) -> tuple[str, object]:
    """The store URL to time, filled with `args.events` events, and what to close afterwards."""
    if args.postgres:
        from tests.support.postgres import PostgresServer

        server = PostgresServer()
        url = server.create_database()
        store = Store(url)
        print(f"filling a PostgreSQL database with {args.events:,} events", file=sys.stderr)
        fill(store, args.events)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        store.close()
        return url, server
    database = args.store / f"events-{args.events}.sqlite"
    url = f"sqlite:///{database}"
    store = Store(url)
    with store.engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(events)).scalar_one()
    if have != args.events:
        print(f"filling {database} with {args.events:,} events", file=sys.stderr)
        store.close()
        database.unlink()
        store = Store(url)
        fill(store, args.events)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    store.close()
    return url, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--store", type=Path, default=Path(tempfile.gettempdir()) / "workbench-eventlog-bench"
    )
    parser.add_argument("--postgres", action="store_true", help="time a PostgreSQL store instead of SQLite")
    args = parser.parse_args()

    args.store.mkdir(parents=True, exist_ok=True)
    config = args.store / "clay.json"
    config.write_text(json.dumps(CONFIG))
    url, server = open_store(args)
    store = Store(url)
    with store.engine.connect() as conn:
        middle = conn.execute(
            select(events.c.received_at, events.c.id)
            .order_by(events.c.received_at, events.c.id)
            .offset(args.events // 2)
            .limit(1)
        ).one()
    store.close()
    try:
        time_pages(url, config, args, middle)
    finally:
        if server is not None:
            server.close()


def time_pages(url: str, config: Path, args, middle) -> None:
    app = create_app(
        {
            "CONFIG_PATHS": [config],
            "STORE_URL": url,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "ENVIRON": {"BENCH_SECRET": "-"},
        }
    )
    client = app.test_client()
    some_id = middle.id
    cursor = f"{middle.received_at.astimezone(UTC).isoformat().replace('+00:00', 'Z')},{middle.id}"
    day = START + timedelta(days=12)
    hour = f"since={day:%Y-%m-%dT%H:%M}&until={day + timedelta(hours=1):%Y-%m-%dT%H:%M}"
    kinds = [
        ("newest 50", PAGE),
        ("newest 100", f"{PAGE}?limit=100"),
        ("status failed", f"{PAGE}?status=failed"),
        ("status invalid", f"{PAGE}?status=invalid"),
        ("event account.enriched", f"{PAGE}?event=account.enriched"),
        ("origin replay", f"{PAGE}?origin=replay"),
        ("one hour, 12 days back", f"{PAGE}?{hour}"),
        ("failed + replay + hour", f"{PAGE}?status=failed&origin=replay&since={day:%Y-%m-%dT%H:%M}"),
        ("search common text", f"{PAGE}?q=company1"),
        ("search rare text", f"{PAGE}?q=lead{args.events // 3}@"),
        ("search an event id", f"{PAGE}?q={some_id}"),
        ("older, half-way down", f"{PAGE}?before={cursor}"),
        ("newer, half-way down", f"{PAGE}?after={cursor}"),
        ("whole entry", f"{PAGE}/events/{some_id}"),
        ("replay-all confirmation", f"{PAGE}?status=failed&confirm=replay-failed"),
    ]
    kind = "PostgreSQL" if args.postgres else "SQLite"
    print(f"event-log page at {args.events:,} events ({kind}), median of {args.runs} runs; target 100 ms")
    worst = 0.0
    for name, url in kinds:
        time_page(client, url, 1)  # warm: templates compiled, pages of the file cached
        seconds, size = time_page(client, url, args.runs)
        worst = max(worst, seconds)
        print(
            f"  {name:28} {seconds * 1000:7.1f} ms  ratio {seconds / TARGET_SECONDS:5.2f}  ({size / 1024:.0f} KiB)"
        )
    print(f"worst page: {worst * 1000:.1f} ms, ratio to the 100 ms target {worst / TARGET_SECONDS:.2f}")


if __name__ == "__main__":
    main()

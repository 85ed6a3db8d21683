"""Requests/s of two `workbench serve` instances sharing one PostgreSQL against one instance on SQLite.

Each instance runs `--workers 2` with the default Clay mapping and the local sink, as in
bench/receiver.py, and is driven by the same wrk load (verified ~1 KB Clay rows, unique emails).
The two PostgreSQL instances each get their own wrk with half the connections, as a load
balancer would split them; their requests/s are summed. The anchor is one instance on SQLite
under the whole load, measured in the same run, in alternating rounds.

    .venv/bin/python bench/receiver_pg.py [--seconds 12] [--rounds 3] [--connections 8]

PostgreSQL is a private server started for the run (Debian's binaries, as the tests use).
Also checks that each event log holds exactly the number of 2xx responses its servers sent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from receiver import BIN, LUA, PATH, SECRET, clay_row, run_wrk, served_2xx, start, stop  # noqa: E402

from tests.support.postgres import PostgresServer, PostgresUnavailable  # noqa: E402


def serve(store_url: str, tmp: Path, name: str, env: dict) -> tuple:
    access = tmp / f"{name}-access.log"
    cmd = [str(BIN / "workbench"), "serve", str(ROOT / "mappings" / "clay.json"), "--store", store_url]
    cmd += ["--port", "0", "--workers", "2", "--access-log", str(access)]
    proc, url = start(cmd, env, tmp / f"{name}.log")
    probe = requests.post(
        url + PATH,
        data=json.dumps(clay_row()).replace("__N__", f"probe-{name}"),
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert probe.status_code == 200 and probe.json()["status"] == "processed", probe.text
    return proc, url, access


def script(tmp: Path, name: str) -> Path:
    """wrk's script; `name` keeps each wrk's rows apart (every wrk numbers its threads from 1)."""
    template = json.dumps(clay_row()).replace("__N__", f"{name}-__N__")
    path = tmp / f"{name}.lua"
    lua = LUA.replace("__TEMPLATE__", template).replace("__PATH__", PATH).replace("__SECRET__", SECRET)
    path.write_text(lua.replace("__DELAY__", ""))
    return path


def run_parallel(targets: list[tuple[str, Path]], seconds: int, connections: int) -> dict:
    """One wrk per target at once; requests/s and counts summed, p99 the worst."""
    results: list[dict] = [{} for _ in targets]

    def one(i: int, url: str, lua: Path) -> None:
        results[i] = run_wrk(url, lua, seconds, connections)

    threads = [threading.Thread(target=one, args=(i, url, lua)) for i, (url, lua) in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = {key: sum(r[key] for r in results) for key in ("rps", "ok", "other", "errors")}
    return {**total, "p99": max(r["p99"] for r in results)}


def logged(store_url: str) -> int:
    from workbench.store import Store

    store = Store(store_url)
    try:
        return sum(store.status_summary("clay", "development")["counts"].values())
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y --no-install-recommends wrk")
    try:
        postgres = PostgresServer()
    except PostgresUnavailable as exc:
        sys.exit(f"cannot start PostgreSQL: {exc}")

    tmp = Path(tempfile.mkdtemp(prefix="bench-receiver-pg-"))
    env = {**os.environ, "CLAY_SIGNING_SECRET_DEVELOPMENT": SECRET}
    env.pop("WORKBENCH_ADMIN_TOKEN", None)
    sqlite_url = f"sqlite:///{tmp / 'events.sqlite'}"
    pg_url = postgres.create_database()
    half = max(1, args.connections // 2)
    print(
        f"wrk on 127.0.0.1, {args.connections} connections: all on one SQLite instance, "
        f"or {half} on each of two PostgreSQL instances; {args.rounds} alternating rounds"
    )
    procs = []
    rounds: dict[str, list[dict]] = {"sqlite": [], "postgres": []}
    try:
        sqlite_proc, sqlite_server, sqlite_access = serve(sqlite_url, tmp, "sqlite", env)
        procs.append(sqlite_proc)
        pg_a, pg_a_url, pg_a_access = serve(pg_url, tmp, "pg-a", env)
        procs.append(pg_a)
        pg_b, pg_b_url, pg_b_access = serve(pg_url, tmp, "pg-b", env)
        procs.append(pg_b)
        slice_seconds = max(1, round(args.seconds / args.rounds))
        lua_sqlite, lua_a, lua_b = script(tmp, "s"), script(tmp, "a"), script(tmp, "b")
        for _ in range(args.rounds):
            rounds["sqlite"].append(
                run_parallel([(sqlite_server, lua_sqlite)], slice_seconds, args.connections)
            )
            rounds["postgres"].append(
                run_parallel([(pg_a_url, lua_a), (pg_b_url, lua_b)], slice_seconds, half)
            )
    finally:
        for proc in procs:
            stop(proc)

    ratios = sorted(p["rps"] / s["rps"] for p, s in zip(rounds["postgres"], rounds["sqlite"], strict=True))
    ratio = ratios[len(ratios) // 2]
    print(
        "rounds, 2 x PostgreSQL / 1 x SQLite req/s:",
        ", ".join(
            f"{p['rps']:.0f}/{s['rps']:.0f}"
            for p, s in zip(rounds["postgres"], rounds["sqlite"], strict=True)
        ),
    )
    for name, label in (("sqlite", "1 x SQLite:    "), ("postgres", "2 x PostgreSQL:")):
        middle = sorted(rounds[name], key=lambda r: r["rps"])[len(rounds[name]) // 2]
        print(f"{label} {middle['rps']:8.1f} req/s  p99 {middle['p99'] / 1000:6.2f} ms (median round)")
    print(f"ratio 2 x PostgreSQL / 1 x SQLite (median round): {ratio:.2f}")

    consistent = True
    for name, url, accesses in (
        ("SQLite", sqlite_url, [sqlite_access]),
        ("PostgreSQL", pg_url, [pg_a_access, pg_b_access]),
    ):
        sent = sum(served_2xx(a) for a in accesses)
        other = sum(r["other"] for r in rounds["sqlite" if name == "SQLite" else "postgres"])
        count = logged(url)
        ok = count == sent and other == 0
        consistent &= ok
        print(f"{name}: 2xx sent by the servers {sent}, events in the log {count}, other answers {other}")
    print("event logs == 2xx responses:", "yes" if consistent else "NO")
    postgres.close()
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if consistent else 1)


if __name__ == "__main__":
    main()

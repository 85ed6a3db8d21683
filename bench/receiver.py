"""Requests/s of `workbench serve --workers 2` against a Flask hello-world under the same gunicorn.

The receiver verifies the Bearer secret, journals each ~1 KB Clay row, maps it with the default
Clay config and answers; its write-behind logs the rows with their actions and the local sink's
writes in one SQLite transaction per 20 ms (`workbench serve`'s defaults). A second receiver runs
the same config with an idempotency key (`body.row_id`): each row also reads whether the store
holds its key and claims it in the claim arbiter before it is answered. The anchor is a Flask app answering "hello" under the same gunicorn
settings (`workbench serve`'s gevent worker class, 2 workers, access log on). All are driven by
wrk on 127.0.0.1 in this one run. Targets, for both receivers: ratio >= 0.5, p99 < 20 ms at
0.5x hello-world's rate, and as many events in the log as 2xx answers.

A third app, the floor, does only the SQLite writes one request makes when each is logged before
it is answered (`--no-write-behind`: the event row, then its action, the user's merged record and
the event's status), in raw sqlite3 with the store's settings, under the same gunicorn: what
logging row by row costs before any of the receiver's own work.

Each app's workers' CPU time per request (Linux /proc) is printed too: on a machine that wrk and
the workers keep busy, requests/s follow it.

Also checks that the event log holds exactly the number of 2xx responses the server sent
(gunicorn's access log), and that wrk saw no other answers.

    .venv/bin/python bench/receiver.py [--seconds 10] [--rounds 3] [--connections 8]

The four run in alternating rounds (receiver, receiver with key, hello-world, floor, …) so all see
the same share of a busy machine; requests/s and p99 are each one's median round.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "bench-signing-secret-6c2e"
PATH = "/sources/clay/development"

HELLO = """
from flask import Flask

app = Flask(__name__)


@app.post("/sources/clay/development")
def hello():
    return "hello"
"""

# The floor of the storage layout: the rows one request writes (the event; then its action, the
# user's merged record and the event's status, in a second transaction), in raw sqlite3 with the
# store's settings, and nothing else (no verification, mapping, SQLAlchemy or reply building).
FLOOR = """
import json, os, sqlite3, time
from datetime import datetime, timezone
from uuid import uuid4

from flask import Flask, request

from workbench.store.db import WAL_AUTOCHECKPOINT_BYTES, checkpoint_pages

app = Flask(__name__)
_conn = None


def conn():
    global _conn
    if _conn is None:
        _conn = sqlite3.connect(os.environ["FLOOR_DB"], isolation_level=None, check_same_thread=False)
        _conn.execute("PRAGMA journal_mode = WAL")
        _conn.execute("PRAGMA synchronous = NORMAL")
        pages = checkpoint_pages(_conn, WAL_AUTOCHECKPOINT_BYTES)
        _conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
    return _conn


def begin(c):
    while True:
        try:
            return c.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            time.sleep(0.00005)


@app.post("/sources/clay/development")
def floor():
    c, body = conn(), request.get_data()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    event_id = "evt_" + uuid4().hex
    headers = json.dumps({k: v for k, v in request.headers.items() if k != "Authorization"})
    begin(c)
    c.execute(
        "INSERT INTO events (id, received_at, source, environment, origin, status, body, headers,"
        " replays, updated_at) VALUES (?, ?, 'clay', 'development', 'live', 'received', ?, ?, 0, ?)",
        (event_id, now, body.decode(), headers, now),
    )
    c.execute("COMMIT")
    row = json.loads(body)
    payload = {"id": row["email"], "name": row["full_name"], "email": row["email"], "properties": row}
    begin(c)
    found = c.execute("SELECT data FROM local_users WHERE id = ?", (row["email"],)).fetchone()
    data = {**(json.loads(found[0]) if found else {}), **payload}
    c.execute(
        "INSERT INTO local_users (id, data, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (id)"
        " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
        (row["email"], json.dumps(data), now, now),
    )
    c.execute(
        "INSERT INTO actions (event_id, position, mapping, action, status, params, payload, result,"
        " attempts, updated_at) VALUES (?, 0, '0:users_identify', 'users_identify', 'success', ?, ?, ?, 1, ?)",
        (event_id, "{}", json.dumps(payload), json.dumps({"id": row["email"]}), now),
    )
    c.execute(
        "UPDATE events SET event = ?, status = 'processed', updated_at = ? WHERE id = ?",
        (row["event"], now, event_id),
    )
    c.execute("COMMIT")
    return {"id": event_id, "status": "processed"}
"""

LUA = r"""
local threads = {}
local template = [[__TEMPLATE__]]
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  ok, other = 0, 0
end

function request()
  counter = counter + 1
  local n = tostring(tid) .. "-" .. tostring(counter)
  local body = string.gsub(template, "__N__", n)
  return wrk.format("POST", "__PATH__", {
    ["Authorization"] = "Bearer __SECRET__",
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "Clay/1.0",
  }, body)
end

__DELAY__

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_other = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_other = total_other + t:get("other")
  end
  io.write(string.format("RESULT ok=%d other=%d errors=%d p50=%d p99=%d\n", total_ok, total_other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def clay_row() -> dict:
    """A lead row as Clay's HTTP API column sends it, ~1 KB; __N__ makes every email unique."""
    return {
        "event": "lead.enriched",
        "email": "jane.doe__N__@acme.com",
        "row_id": "row-__N__",
        "full_name": "Jane Doe",
        "phone_number": "+1 415 555 0100",
        "avatar_url": "https://cdn.example.com/avatars/jane-doe.png",
        "job_title": "VP Sales",
        "company_name": "Acme",
        "company_domain": "acme.com",
        "linkedin_url": "https://www.linkedin.com/in/jane-doe-__N__",
        "icp_score": "87",
        "employee_count": "420",
        "industry": "Software",
        "location": "San Francisco, California, United States",
        "headline": "VP Sales at Acme | Building revenue teams that scale | ex-Globex, ex-Initech",
        "company_enrichment": {
            "founded": "2012",
            "funding": "Series B",
            "total_raised": "$48M",
            "hq": "San Francisco, CA",
            "technologies": ["Salesforce", "HubSpot", "Segment", "Snowflake", "dbt", "Looker"],
        },
        "find_work_email": "jane.doe@acme.com",
        "find_work_email_2": "",
        "notes": "Met at SaaStr; interested in the enterprise plan. Follow up after Q3 planning, "
        "mention the case study with Globex and the SOC 2 report.",
    }


def start(cmd: list[str], env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    out = open(log, "wb")  # noqa: SIM115 - the server owns it until it exits
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(r"Listening at: (http://\S+)", text)
        if proc.poll() is not None:
            sys.exit(f"{cmd[0]} exited:\n{text}")
        if found and len(re.findall(r"Booting worker", text)) >= 2:
            return proc, found.group(1)
        time.sleep(0.1)
    sys.exit(f"server did not start:\n{log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)  # graceful: in-flight requests finish and are logged
    proc.wait(60)


def worker_cpu(master: subprocess.Popen) -> float:
    """CPU seconds (user + system) used so far by the server's workers, from Linux /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that just ended
            continue
        if int(fields[1]) == master.pid:  # ppid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url + PATH],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    fields = dict(re.findall(r"(\w+)=(\d+)", out.split("RESULT", 1)[1]))
    return {"rps": rps, **{k: int(v) for k, v in fields.items()}}


def combine(rounds: list[dict]) -> dict:
    """Sum counts over rounds; requests/s and p99 are the median round's."""
    middle = sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2]
    out = {key: sum(r[key] for r in rounds) for key in ("ok", "other", "errors")}
    return {**out, "rps": middle["rps"], "p50": middle["p50"], "p99": middle["p99"]}


def served_2xx(access_log: Path) -> int:
    return sum(1 for line in access_log.read_text().splitlines() if re.search(r'"POST [^"]*" 2\d\d ', line))


def receivers(tmp: Path, env: dict) -> dict[str, tuple[subprocess.Popen, str, str, Path]]:
    """`workbench serve` twice, each on its own store: the default Clay config, and the same with
    an idempotency key (`body.row_id`, as Knock's Clay page recommends for re-run rows)."""
    raw = json.loads((ROOT / "mappings" / "clay.json").read_text())
    raw["environments"]["development"]["idempotency"] = {"key": "body.row_id", "window_hours": 24}
    (tmp / "clay-key.json").write_text(json.dumps(raw))
    out = {}
    for name, config in (
        ("receiver", ROOT / "mappings" / "clay.json"),
        ("receiver+key", tmp / "clay-key.json"),
    ):
        label = name.replace("+", "-")
        store_url = f"sqlite:///{tmp / f'{label}.sqlite'}"
        access_log = tmp / f"{label}-access.log"
        cmd = [str(BIN / "workbench"), "serve", str(config), "--store", store_url, "--port", "0"]
        cmd += ["--workers", "2", "--access-log", str(access_log)]
        proc, url = start(cmd, env, tmp / f"{label}.log")
        out[name] = (proc, url, store_url, access_log)
    return out


def paced(url: str, lua: str, tmp: Path, target: float, seconds: int, connections: int) -> list[dict]:
    """wrk offering `target` requests/s in all: wrk waits `delay` after each answer, so a
    connection's cycle is the delay plus the answer's time. Each run sets the delay from the
    answer time the run before it saw, until one comes within 10% of the target (at most four:
    a first run slowed by a stall would otherwise leave the next one offering far more)."""
    script = tmp / "paced.lua"
    cycle_ms = 1000 * connections / target
    delay_ms = cycle_ms
    runs = []
    for _ in range(4):
        script.write_text(lua.replace("__DELAY__", f"function delay() return {delay_ms:.2f} end"))
        run = run_wrk(url, script, seconds, connections)
        runs.append(run)
        if runs[1:] and abs(run["rps"] / target - 1) <= 0.1:
            break
        answer_ms = max(0.0, 1000 * connections / max(run["rps"], 1) - delay_ms)
        delay_ms = max(0.0, cycle_ms - answer_ms)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y --no-install-recommends wrk")

    from workbench.receiver.serving import HEADER_SECONDS, WORKER_CONNECTIONS
    from workbench.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="bench-receiver-"))
    pythonpath = os.pathsep.join(p for p in (str(tmp), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "CLAY_SIGNING_SECRET_DEVELOPMENT": SECRET, "PYTHONPATH": pythonpath}
    env.pop("WORKBENCH_ADMIN_TOKEN", None)
    template = json.dumps(clay_row())
    lua = LUA.replace("__TEMPLATE__", template).replace("__PATH__", PATH).replace("__SECRET__", SECRET)
    script = tmp / "post.lua"
    script.write_text(lua.replace("__DELAY__", ""))
    (tmp / "hello.py").write_text(HELLO)
    (tmp / "floor.py").write_text(FLOOR)
    print(
        f"body: {len(template.encode())} bytes; wrk -t2 -c{args.connections} -d{args.seconds}s on 127.0.0.1"
    )

    servers = receivers(tmp, env)
    # The anchors run under `workbench serve`'s own gunicorn settings: its gevent worker class.
    cmd = [str(BIN / "gunicorn"), "--workers", "2", "--bind", "127.0.0.1:0"]
    cmd += ["--worker-class", "workbench.receiver.serving.ReceiverWorker"]
    cmd += ["--worker-connections", str(WORKER_CONNECTIONS), "--keep-alive", str(int(HEADER_SECONDS))]
    cmd += ["--timeout", "60", "--access-logfile", str(tmp / "hello-access.log"), "hello:app"]
    hello_proc, hello_url = start(cmd, env, tmp / "hello.log")
    floor_db = tmp / "floor.sqlite"
    Store(f"sqlite:///{floor_db}").close()  # the store's own tables and indexes
    cmd = [*cmd[:-2], str(tmp / "floor-access.log"), "floor:app"]
    floor_proc, floor_url = start(cmd, {**env, "FLOOR_DB": str(floor_db)}, tmp / "floor.log")
    names = ["receiver", "receiver+key", "hello", "floor"]
    urls = {name: (proc, url) for name, (proc, url, _, _) in servers.items()}
    urls |= {"hello": (hello_proc, hello_url), "floor": (floor_proc, floor_url)}
    rounds: dict[str, list[dict]] = {name: [] for name in names}
    pacing: dict[str, list[dict]] = {}
    try:
        for name in servers:
            probe = requests.post(
                urls[name][1] + PATH,
                data=template.replace("__N__", "probe"),
                headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
                timeout=30,
            )
            assert probe.status_code == 200 and probe.json()["status"] == "processed", probe.text
        # Alternating short rounds, so all see the same share of a machine that others use too.
        slice_seconds = max(1, round(args.seconds / args.rounds))
        for _ in range(args.rounds):
            for name in names:
                proc, url = urls[name]
                before = worker_cpu(proc)
                result = run_wrk(url, script, slice_seconds, args.connections)
                answered = max(1, result["ok"] + result["other"])
                rounds[name].append({**result, "cpu_ms": 1000 * (worker_cpu(proc) - before) / answered})
        hello = combine(rounds["hello"])
        # Latency at the target rate: each receiver paced to 0.5x hello-world's rate in total (or,
        # when it does not sustain that, 80% of what it did).
        for name in servers:
            done = combine(rounds[name])
            target = 0.5 * hello["rps"] if done["rps"] >= 0.5 * hello["rps"] else 0.8 * done["rps"]
            # Each starts with the disk's pending writes done: the floor's, written just before,
            # would otherwise land on the first one's syncs.
            os.sync()
            pacing[name] = paced(urls[name][1], lua, tmp, target, slice_seconds, args.connections)
            pacing[name][-1]["target"] = target
    finally:
        for proc, *_ in servers.values():
            stop(proc)
        stop(hello_proc)
        stop(floor_proc)

    print(f"hello-world:  {hello['rps']:9.1f} req/s  p99 {hello['p99'] / 1000:6.2f} ms (saturated)")
    consistent = True
    for name, (_, _, store_url, access_log) in servers.items():
        done = combine(rounds[name])
        ratios = sorted(r["rps"] / h["rps"] for r, h in zip(rounds[name], rounds["hello"], strict=True))
        ratio = ratios[len(ratios) // 2]
        run = pacing[name][-1]
        print(f"{name + ':':13} {done['rps']:9.1f} req/s  p99 {done['p99'] / 1000:6.2f} ms (saturated)")
        print(
            f"  rounds, {name}/hello-world req/s: "
            + ", ".join(
                f"{r['rps']:.0f}/{h['rps']:.0f}" for r, h in zip(rounds[name], rounds["hello"], strict=True)
            )
        )
        print(f"  ratio {name}/hello-world (median round): {ratio:.2f} (target >= 0.5)")
        print(
            f"  paced to {run['target']:.0f} req/s: {run['rps']:.1f} req/s, p50 {run['p50'] / 1000:.2f} ms, "
            f"p99 {run['p99'] / 1000:.2f} ms (target < 20 ms)"
        )
        store = Store(store_url)
        logged = sum(store.status_summary("clay", "development")["counts"].values())
        store.close()
        sent_2xx = served_2xx(access_log)  # includes the probe
        seen = {k: done[k] + sum(r[k] for r in pacing[name]) for k in ("ok", "other", "errors")}
        print(
            f"  2xx seen by wrk: {seen['ok'] + 1} (incl. probe), other answers: {seen['other']}, socket "
            f"errors: {seen['errors']}; 2xx sent by the server: {sent_2xx}; events in the log: {logged}"
        )
        same = logged == sent_2xx and seen["other"] == 0 and seen["ok"] + 1 <= sent_2xx
        print("  event log == 2xx responses:", "yes" if same else "NO")
        consistent = consistent and same
    floors = sorted(f["rps"] / h["rps"] for f, h in zip(rounds["floor"], rounds["hello"], strict=True))
    print(
        f"floor (the same SQLite writes in raw sqlite3, nothing else): {combine(rounds['floor'])['rps']:.1f}"
        f" req/s, ratio floor/hello-world {floors[len(floors) // 2]:.2f}"
    )
    cpu = {name: sorted(r["cpu_ms"] for r in rs)[len(rs) // 2] for name, rs in rounds.items()}
    print(
        "workers' CPU per request (median round): "
        + ", ".join(f"{name} {cpu[name]:.2f} ms" for name in names)
        + f"; 0.5x hello-world's rate leaves a receiver about {2 * cpu['hello']:.2f} ms while the"
        " machine is CPU-bound"
    )
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if consistent else 1)


if __name__ == "__main__":
    main()

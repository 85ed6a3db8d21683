"""Backfill throughput against its anchors, and peak memory on a big export.

Generates a realistic Clay export (~34 columns, JSON cells, multi-line text, ~1 KB a row) into a
temporary directory and times, in this one run, on the same file:
  (a) the limit: DuckDB alone projecting the default identify payloads to NDJSON;
  (b) the peer: csv.DictReader + precompiled jsonpath-ng + one SQLite transaction of upserts;
  (c) `workbench backfill` into the local store with the default identify mapping and full
      logging (in this process, so interpreter start-up is not counted): ordinary rows planned in
      bulk by DuckDB and logged one entry a batch (`backfill.columnar`), the others row by row;
  (c0) the same with --no-bulk: every row planned by the engine and logged whole (c0/c: what the
      bulk planning gains);
  (g) the same backfill again on the unchanged export: a sync that finds every payload applied
      (every row's fingerprint matched in bulk by DuckDB, see `backfill.fingerprints`);
  (h) again after one mapped property changed (the user's name): every row is applied anew.
  (i) for reference, a comparison in bulk alone: DuckDB reads the export, fingerprints each row
      (all its cells and the config's hash) and anti-joins them with fingerprints stored before.
  (d) for reference, (c)'s own rows (events, actions, applied payloads and rows, users) inserted
      again with raw sqlite3 executemany in the backfill's transactions: the floor of writing
      what (c) keeps in SQLite;
  (e) the same, in one transaction without SQLite's journal or syncs (no crash safety at all).
  (f) for reference, the work of the per-row path before anything is applied or written, alone:
      the export read by `workbench.backfill.CsvRows`, each row's body built from the template,
      planned by the core `Engine`, its idempotency key hashed and its fingerprint taken (no sink,
      no store).
Prints the ratios c/a (target <= 2.0), b/c (target >= 1.5), g/a (target <= 1.0), h/c (target
<= 1.2), c0/c and c/d, the time (a) and (b) leave (c) under the targets, then the peak memory
(max RSS) of `workbench backfill` run as a subprocess on a --memory-rows export (target < 500 MB),
as the process's own high-water mark (Linux /proc).

Then (k): the first --knock-rows rows backfilled into Knock through the knock sink and the real
`knockapi` SDK, against the strict fake Knock of the tests (`tests/fakes/knock.py`) at Knock's
real rate limits (speed 1: bulk identify takes one call a second; each bulk operation completes
0.2 s after the call, then is looked up until it has). Knock's limits set its floor: one call of
1,000 users a second, so (rows to identify / 1,000) seconds. Prints k / floor (target <= 1.3).

    .venv/bin/python bench/backfill.py [--rows 50000] [--memory-rows 500000] [--knock-rows 20000]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from click.testing import CliRunner
from jsonpath_ng import parse as jsonpath_parse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.make_samples import write_export  # noqa: E402
from workbench.backfill.runner import BACKFILL_CACHE_KIB, DEFAULT_BATCH  # noqa: E402
from workbench.cli import main as cli  # noqa: E402

CONFIG = ROOT / "mappings" / "clay.json"
TEMPLATE = json.loads(CONFIG.read_text())["clay"]["body_template"]
PARAMS = {
    "id": "$.email",
    "name": "$.full_name",
    "email": "$.email",
    "phone_number": "$.phone_number",
    "avatar": "$.avatar_url",
    "properties": "$",
}


def limit_duckdb(export: Path, out: Path) -> int:
    """(a) DuckDB reads the CSV, builds each body by the template and writes identify payloads."""

    def cell(column: str) -> str:
        q = '"' + column.replace('"', '""') + '"'
        return (
            f"CASE WHEN {q} LIKE '❌%' THEN NULL "
            f"ELSE NULLIF(trim(regexp_replace({q}, '^✅\\s*', '')), '') END"
        )

    fields = []
    for key, spec in TEMPLATE.items():
        if isinstance(spec, dict) and "value" in spec:
            fields.append(f"{key} := '{spec['value']}'")
        elif isinstance(spec, dict):
            fields.append(f"{key} := TRY_CAST({cell(spec['column'])} AS DOUBLE)")
        else:
            fields.append(f"{key} := {cell(spec)}")
    con = duckdb.connect()
    con.execute(
        f"""COPY (
              SELECT b.email AS id, b.full_name AS name, b.email AS email, b.phone_number AS phone_number,
                     b.avatar_url AS avatar, b AS properties
              FROM (SELECT struct_pack({", ".join(fields)}) AS b
                    FROM read_csv('{export}', all_varchar = true, header = true, quote = '"', escape = '"'))
              WHERE b.email IS NOT NULL
            ) TO '{out}' (FORMAT json)"""
    )
    con.close()
    with open(out, "rb") as f:
        return sum(1 for _ in f)


def _clean(cell: str):
    if not cell or cell.startswith("❌"):
        return None
    return cell[1:].strip() if cell.startswith("✅") else cell


def peer_script(export: Path, db: Path) -> int:
    """(b) A plain script: DictReader, the template by hand, jsonpath-ng, one SQLite transaction."""
    expressions = {name: jsonpath_parse(path) for name, path in PARAMS.items()}
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users (id TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at TEXT NOT NULL)")
    upserted = 0
    with open(export, encoding="utf-8-sig", newline="") as f, con:
        for row in csv.DictReader(f):
            body = {}
            for key, spec in TEMPLATE.items():
                if isinstance(spec, dict) and "value" in spec:
                    body[key] = spec["value"]
                    continue
                column = spec["column"] if isinstance(spec, dict) else spec
                value = _clean(row[column])
                if value is not None:
                    body[key] = float(value) if isinstance(spec, dict) else value
            payload = {}
            for name, expression in expressions.items():
                found = expression.find(body)
                if found and found[0].value not in (None, ""):
                    payload[name] = found[0].value
            if "id" not in payload:
                continue
            con.execute(
                "INSERT INTO users (id, data, updated_at) VALUES (?, ?, datetime('now')) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (payload["id"], json.dumps(payload, ensure_ascii=False)),
            )
            upserted += 1
    con.close()
    return upserted


def workbench_backfill(export: Path, db: Path, config: Path = CONFIG, *options: str) -> dict:
    """(c) `workbench backfill` with the shipped config's development environment (local sink);
    (g) and (h) run it again on the same store; (c0) is (c) with `--no-bulk`."""
    args = [
        "backfill",
        str(config),
        str(export),
        "--env",
        "development",
        "--store",
        f"sqlite:///{db}",
        *options,
    ]
    result = CliRunner().invoke(cli, [*args, "--no-progress"], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return json.loads(result.stdout.strip().splitlines()[-1])


# The fake Knock runs in a process of its own, as Knock does: its checking of every request
# against Knock's API description must not take the backfill's CPU.
FAKE_KNOCK = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.fakes.knock import FakeKnock
fake = FakeKnock(speed=1.0)
print(fake.url, flush=True)
sys.stdin.readline()
print(json.dumps(len(fake.requests_to("/v1/users/bulk/identify"))), flush=True)
fake.stop()
"""


def knock_backfill(export: Path, rows: int, tmp: Path) -> tuple[float, dict, int]:
    """(k) the default identify mapping into the strict fake Knock at real tier limits: (seconds,
    summary, bulk identify calls)."""
    from tests.fakes.knock import API_KEY
    from workbench.backfill import Backfill, CsvRows
    from workbench.config import load_config
    from workbench.sinks import make_sink
    from workbench.store import Store

    raw = json.loads(CONFIG.read_text())
    development = raw["environments"]["development"]
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE_KNOCK, str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = fake.stdout.readline().strip()
        development["sink"] = {"type": "knock", "api_key": {"$env": "KNOCK_API_KEY"}, "base_url": url}
        config_path = tmp / "knock.json"
        config_path.write_text(json.dumps(raw))
        config = load_config(config_path)
        store = Store(f"sqlite:///{tmp / 'k.sqlite'}")
        try:
            sink = make_sink(config.environment("development").sink, store, {"KNOCK_API_KEY": API_KEY})
            backfill = Backfill(config, "development", store, sink)
            started = time.perf_counter()
            summary = backfill.run(CsvRows(export), limit=rows, progress=False)
            seconds = time.perf_counter() - started
        finally:
            store.close()
        fake.stdin.write("\n")
        fake.stdin.flush()
        calls = json.loads(fake.stdout.readline())
        return seconds, summary.to_dict(), calls
    finally:
        fake.stdin.close()
        fake.wait(30)


def writes_alone(logged: Path, db: Path, batch: int = DEFAULT_BATCH, safe: bool = True) -> float:
    """(d) The floor of (c)'s writes: the very rows (c) stored (events, actions, applied payloads
    and rows, users), inserted again with raw sqlite3 executemany in transactions of `batch` rows
    (the backfill's own size). (e) with `safe` off: no journal, no syncs."""
    from workbench.store import Store

    Store(f"sqlite:///{db}").close()  # the same schema and indexes
    source = sqlite3.connect(logged)
    rows_total = source.execute("SELECT count(*) FROM applied_rows").fetchone()[0]
    tables = {}
    for table in ("events", "actions", "applied_payloads", "applied_rows", "local_users"):
        cursor = source.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description if d[0] != "id" or table != "actions"]
        picks = ", ".join(names)
        rows = source.execute(f"SELECT {picks} FROM {table}").fetchall()
        tables[table] = (f"INSERT INTO {table} ({picks}) VALUES ({', '.join('?' * len(names))})", rows)
    source.close()
    started = time.perf_counter()
    target = sqlite3.connect(db, isolation_level=None)
    target.execute(f"PRAGMA journal_mode = {'WAL' if safe else 'OFF'}")
    target.execute(f"PRAGMA synchronous = {'NORMAL' if safe else 'OFF'}")
    target.execute(f"PRAGMA cache_size = -{BACKFILL_CACHE_KIB}")
    for start in range(0, rows_total, batch):
        target.execute("BEGIN IMMEDIATE")
        for sql, rows in tables.values():
            share = len(rows) / rows_total
            target.executemany(sql, rows[int(start * share) : int((start + batch) * share)])
        target.execute("COMMIT")
    target.close()
    return time.perf_counter() - started  # the reading above is not timed


def rows_planned(export: Path) -> int:
    """(f) Reading, bodies, plans and keys of every row: the backfill's own `_prepare`, as (c) runs
    it, without a sink or store."""
    from workbench.backfill import Backfill, CsvRows
    from workbench.backfill.fingerprints import config_digest
    from workbench.backfill.rules import Row
    from workbench.clay import body_builder
    from workbench.config import load_config

    job = Backfill(load_config(CONFIG), "development", store=None, sink=None)
    job.digest = config_digest(job.config, job.env.name, None, {})  # each row's fingerprint too, as (c)
    source = CsvRows(export)
    build = body_builder(source.columns, job.template, job.default_event)
    keyed = 0
    try:
        for number, cells in source.rows():
            row = Row(number, cells)
            job._prepare(row, build, "evt_bench")
            keyed += row.key is not None
    finally:
        source.close()
    return keyed


def bulk_comparison(export: Path) -> int:
    """(i) The fingerprints of a first run (made here, untimed), then the timed re-run comparison:
    every row fingerprinted by DuckDB and anti-joined with them. Returns the rows left over."""
    config = hashlib.sha256(CONFIG.read_bytes()).hexdigest()
    source = f"read_csv('{export}', all_varchar = true, header = true, quote = '\"', escape = '\"')"
    con = duckdb.connect()
    names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    cells = ", ".join(f"coalesce({_quoted(n)}, chr(0))" for n in names)
    fingerprints = f"SELECT md5(concat_ws(chr(31), '{config}', {cells})) AS fp FROM {source}"
    stored = [fp for (fp,) in con.execute(fingerprints).fetchall()]
    con.close()
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("CREATE TABLE applied_rows AS SELECT unnest($1::VARCHAR[]) AS fp", [stored])
    left = con.execute(f"SELECT count(*) FROM ({fingerprints}) ANTI JOIN applied_rows USING (fp)").fetchone()[
        0
    ]
    con.close()
    bulk_comparison.seconds = time.perf_counter() - started
    return left


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def renamed_config(tmp: Path) -> Path:
    """The shipped config with one mapped property changed: the user's name also says the company."""
    data = json.loads(CONFIG.read_text())
    params = data["environments"]["development"]["mappings"][0]["params"]
    params["name"] = {"template": "{{body.full_name}} ({{body.company_name}})"}
    path = tmp / "renamed.json"
    path.write_text(json.dumps(data))
    return path


def timed(fn, *args):
    started = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - started, value


def peak_memory(rows: int, tmp: Path) -> None:
    export = tmp / "memory.csv"
    seconds, _ = timed(write_export, export, rows, 11)
    size = export.stat().st_size / 1e6
    print(f"memory run: {rows} rows, {size:.0f} MB export (generated in {seconds:.0f} s)")
    # The child reports its own high-water mark (VmHWM of the process after exec): getrusage's
    # max RSS would also count the moment it was forked from this (already large) process.
    child = (
        "import sys\n"
        "from workbench.cli import main\n"
        "try:\n"
        "    main(standalone_mode=False)\n"
        "finally:\n"
        "    with open('/proc/self/status') as status:\n"
        "        hwm = [line.split()[1] for line in status if line.startswith('VmHWM:')]\n"
        "    print('VMHWM_KIB', hwm[0], file=sys.stderr)\n"
    )
    command = [
        sys.executable,
        "-c",
        child,
        "backfill",
        str(CONFIG),
        str(export),
        "--env",
        "development",
        "--store",
        f"sqlite:///{tmp / 'memory.sqlite'}",
        "--no-progress",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    found = re.search(r"VMHWM_KIB (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(done.stderr)
    peak_mb = int(found.group(1)) / 1024
    print(f"  {done.stdout.strip().splitlines()[-1]}")
    print(
        f"  peak memory (max RSS) of workbench backfill: {peak_mb:.0f} MB (target < 500) in {elapsed:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--memory-rows", type=int, default=500_000, help="0 skips the memory run")
    parser.add_argument("--knock-rows", type=int, default=20_000, help="0 skips the Knock run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as name:
        tmp = Path(name)
        export = tmp / "export.csv"
        write_export(export, args.rows, seed=5)
        with open(export, encoding="utf-8", newline="") as f:
            columns = len(next(csv.reader(f)))
        print(f"export: {args.rows} rows x {columns} columns, {export.stat().st_size / 1e6:.0f} MB")
        a, identified = timed(limit_duckdb, export, tmp / "a.ndjson")
        b, upserted = timed(peer_script, export, tmp / "b.sqlite")
        c, summary = timed(workbench_backfill, export, tmp / "c.sqlite")
        c0, per_row = timed(workbench_backfill, export, tmp / "c0.sqlite", CONFIG, "--no-bulk")
        d = writes_alone(tmp / "c.sqlite", tmp / "d.sqlite")
        e = writes_alone(tmp / "c.sqlite", tmp / "e.sqlite", batch=args.rows, safe=False)
        f, planned = timed(rows_planned, export)
        g, unchanged = timed(workbench_backfill, export, tmp / "c.sqlite")
        h, renamed = timed(workbench_backfill, export, tmp / "c.sqlite", renamed_config(tmp))
        left = bulk_comparison(export)
        i = bulk_comparison.seconds
        print(f"(a) DuckDB to NDJSON:          {a:6.2f} s  ({identified} payloads)")
        print(f"(b) DictReader+jsonpath+SQLite: {b:6.2f} s  ({upserted} upserts)")
        print(f"(c) workbench backfill:         {c:6.2f} s  {json.dumps(summary)}")
        print(f"(c0) (c) with --no-bulk:        {c0:6.2f} s  {json.dumps(per_row)}")
        print(f"(d) (c)'s writes alone, raw:    {d:6.2f} s  (the SQLite floor of what (c) keeps)")
        print(f"(e) (d) unjournaled, one txn:   {e:6.2f} s  (below any crash-safe writing)")
        print(
            f"(f) read, build, plan, hash:    {f:6.2f} s  ({planned} rows to apply, row by row; no sink, no store)"
        )
        print(f"(g) (c) again, unchanged:      {g:6.2f} s  {json.dumps(unchanged)}")
        print(f"(h) (c) again, name changed:   {h:6.2f} s  {json.dumps(renamed)}")
        print(f"(i) a comparison in bulk alone: {i:6.2f} s  ({left} rows left for Python)")
        print(f"c/a = {c / a:.2f}  (target <= 2.0)")
        print(f"b/c = {b / c:.2f}  (target >= 1.5)")
        print(f"g/a = {g / a:.2f}  (target <= 1.0: a re-run that applies nothing, against the limit)")
        print(f"h/c = {h / c:.2f}  (target <= 1.2: a re-run that applies every row, against the first run)")
        print(f"i/a = {i / a:.2f}  (a comparison in bulk alone, against the limit)")
        print(f"c0/c = {c0 / c:.2f}  (what planning ordinary rows in bulk gains over the per-row path)")
        print(f"c/d = {c / d:.2f}  (how far above its own writes the backfill is)")
        print(
            f"the targets leave (c) {min(2.0 * a, b / 1.5):.2f} s in all: "
            f"{2.0 * a:.2f} s by (a), {b / 1.5:.2f} s by (b); its own writes (d) take {d:.2f} s, "
            f"(a) and (d) together {a + d:.2f} s"
        )
        if args.memory_rows:
            peak_memory(args.memory_rows, tmp)
        if args.knock_rows:
            knock_line(export, min(args.knock_rows, args.rows), tmp)


def knock_line(export: Path, rows: int, tmp: Path) -> None:
    k, summary, calls = knock_backfill(export, rows, tmp)
    identified = summary.get("processed", 0) + summary.get("applied", 0)
    floor = math.ceil(identified / 1000) * 1.0
    print(
        f"(k) into Knock at its limits:  {k:6.2f} s  {json.dumps(summary)} "
        f"({calls} bulk identify calls; floor {floor:.0f} s = {identified} users / 1,000 a call, 1 call a second)"
    )
    print(f"k/floor = {k / floor:.2f}  (target <= 1.3)")


if __name__ == "__main__":
    main()

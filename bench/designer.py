"""Designer refresh: from a widget change to a refreshed preview of 20 rows plus failure counts over
a 50,000-row export, against a plain pandas recomputation of the same preview, in one run.

    .venv/bin/python bench/designer.py [--rows 50000] [--repeats 15]

The export is generated from the shipped sample (rows cycled, emails, names and ids varied, some
cells blanked) into a temporary DuckDB file. "cold" is the first switch to each column (nothing of
it cached yet); "warm" switches back to a column seen before, as an analyst trying options does.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from workbench import Engine, SourceEvent, load_config
from workbench.clay import load_export, row_to_body
from workbench.designer import MappingDesigner
from workbench.sinks import DryRunSink

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "clay_leads_sample.csv"
CONFIG = ROOT / "mappings" / "clay.json"
COLUMNS = ["Company Domain", "Find Work Email", "LinkedIn URL", "Full Name", "Phone Number", "Work Email"]


def generate(path: Path, rows: int) -> None:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header, sample = reader.fieldnames, list(reader)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, quoting=csv.QUOTE_ALL)
        writer.writeheader()
        for i in range(rows):
            row = dict(sample[i % len(sample)])
            if row.get("Work Email"):
                user, _, domain = row["Work Email"].partition("@")
                row["Work Email"] = f"{user}.{i}@{domain}"
            if i % 9 == 0:
                row["Work Email"] = ""
            row["Full Name"] = f"{row.get('Full Name', '')} {i}"
            row["LinkedIn URL"] = f"https://www.linkedin.com/in/lead-{i}"
            if i % 13 == 0:
                row["Company Domain"] = ""
            writer.writerow(row)


def pandas_recompute(con, table: str, config, event: str, sample: int) -> tuple[list, dict]:
    """The same preview the plain way: every row to a body, every body through the engine."""
    frame = con.sql(f'SELECT * FROM "{table}"').df()
    engine = Engine(config, "development", DryRunSink())
    bodies = frame.apply(lambda r: row_to_body(r.to_dict(), config.body_template, event), axis=1)
    outcomes = bodies.map(lambda b: engine.process(SourceEvent(json.dumps(b), origin="backfill")).to_dict())
    statuses = outcomes.map(lambda o: tuple(a["status"] for a in o["actions"]))
    return list(outcomes[:sample]), statuses.value_counts().to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export.csv"
        generate(export, args.rows)
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        load_export(export, con, table="leads")
        designer = MappingDesigner(con, "leads", config=CONFIG)
        editor = designer.param_editors["id"]
        cold, warm = [], []
        for repeat in range(args.repeats):
            for column in COLUMNS:
                start = time.perf_counter()
                editor.column.value = column
                elapsed = time.perf_counter() - start
                assert designer.last_error is None, designer.error_area.value
                assert len(designer.preview) == 20 and designer.counts
                (cold if repeat == 0 else warm).append(elapsed)
        config = load_config(CONFIG)
        anchor = []
        for _ in range(3):
            start = time.perf_counter()
            preview, tallies = pandas_recompute(con, "leads", config, "lead.enriched", 20)
            anchor.append(time.perf_counter() - start)
        con.close()
    warm_ms, cold_ms, anchor_ms = (statistics.median(x) * 1000 for x in (warm, cold, anchor))
    print(f"rows: {args.rows:,}; preview: 20 rows; counts over every row; {len(COLUMNS)} columns switched")
    print(f"designer refresh, warm (median of {len(warm)}): {warm_ms:8.1f} ms")
    print(
        f"designer refresh, cold (median of {len(cold)}): {cold_ms:8.1f} ms (slowest {max(cold) * 1000:.1f} ms)"
    )
    print(f"pandas recomputation (median of {len(anchor)}):  {anchor_ms:8.1f} ms")
    print(f"ratio pandas / designer: warm {anchor_ms / warm_ms:.1f}x, cold {anchor_ms / cold_ms:.1f}x")


if __name__ == "__main__":
    main()

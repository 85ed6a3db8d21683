import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from scripts.make_samples import write_export
from workbench.cli import main

from .conftest import IDENTIFY_AND_TRIGGER, LEADS, ROOT, SAMPLES, config_with, export_rows, rows, scalar

COUNTS = ("applied", "unchanged", "skipped", "no_mapping", "invalid", "failed", "queued")


def invoke(*args):
    result = CliRunner().invoke(main, ["backfill", *map(str, args)])
    return result, (json.loads(result.stdout.strip().splitlines()[-1]) if result.exit_code == 0 else None)


def test_backfill_prints_one_json_line_of_counts(store, tmp_path):
    failures = tmp_path / "failed.csv"
    result, summary = invoke(
        config_with(tmp_path),
        LEADS,
        "--env",
        "development",
        "--store",
        store.url,
        "--failures",
        failures,
        "-H",
        "X-Clay-Table-Id: t_123",
    )
    assert result.exit_code == 0, result.output
    assert list(summary) == [*COUNTS, "seconds"]
    assert summary["applied"] + summary["failed"] == 200 and summary["failed"] > 0
    assert len(export_rows(failures)) == summary["failed"]
    headers = rows(store, "SELECT DISTINCT headers FROM events")
    assert [json.loads(h) for (h,) in headers] == [{"x-clay-table-id": "t_123"}]
    again, second = invoke(config_with(tmp_path), LEADS, "--env", "development", "--store", store.url)
    assert second["unchanged"] == summary["applied"] and second["applied"] == 0


def test_backfill_from_a_loaded_table(store, tmp_path):
    db = tmp_path / "w.duckdb"
    assert CliRunner().invoke(main, ["load", str(LEADS), "--db", str(db)]).exit_code == 0
    result, summary = invoke(
        config_with(tmp_path),
        "--table",
        "clay_leads_sample",
        "--db",
        db,
        "--env",
        "development",
        "--store",
        store.url,
        "--limit",
        30,
    )
    assert result.exit_code == 0, result.output
    assert summary["applied"] + summary["failed"] == 30


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give either an EXPORT.csv file or --table NAME"),
        ([LEADS, "--table", "t"], "give either an EXPORT.csv file or --table NAME"),
        ([SAMPLES / "not_a_clay_export.csv"], "line 2"),
        (["--table", "t", "--db", "/nonexistent/w.duckdb"], "load an export first"),
    ],
)
def test_backfill_usage_errors(store, tmp_path, args, message):
    result, _ = invoke(config_with(tmp_path), *args, "--env", "development", "--store", store.url)
    assert result.exit_code == 2 and message in result.output
    assert scalar(store, "SELECT count(*) FROM events") == 0


def test_a_failures_path_that_cannot_be_written_stops_before_any_row(store, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    failures = blocker / "failed.csv"
    result, _ = invoke(
        config_with(tmp_path), LEADS, "--env", "development", "--store", store.url, "--failures", failures
    )
    assert result.exit_code == 2, result.output
    assert f"cannot write the failures file {failures} ({blocker} is not a folder)" in result.output
    assert "Traceback" not in result.output
    assert scalar(store, "SELECT count(*) FROM events") == 0


def test_backfill_help_says_it_is_a_sync():
    text = " ".join(CliRunner().invoke(main, ["backfill", "--help"]).output.split())
    assert "what was last applied to its target" in text
    for word in ("--full", "--retrigger", "--plan", "applied, unchanged, skipped"):
        assert word in text


def _start(config, export, store, *extra):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            # Ctrl-C as in a terminal, even where the suite runs with SIGINT ignored (a background job)
            "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from workbench.cli import main; main()",
            "backfill",
            str(config),
            str(export),
            "--env",
            "development",
            "--store",
            store.url,
            "--batch-size",
            "25",
            "--no-progress",
            *map(str, extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for_events(store, proc, at_least):
    while proc.poll() is None:
        if scalar(store, "SELECT count(*) FROM events") >= at_least:
            return
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_backfill_completes_on_rerun_without_duplicates(store, tmp_path, how):
    export = tmp_path / "big.csv"
    total = write_export(export, 4000, seed=3)
    config = config_with(tmp_path, mappings=IDENTIFY_AND_TRIGGER)
    proc = _start(config, export, store)
    _wait_for_events(store, proc, 200)
    proc.send_signal(how)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == (-9 if how == signal.SIGKILL else 130), err
    done_first = scalar(store, "SELECT count(*) FROM events")
    assert 0 < done_first < total  # it really stopped mid-way
    if how == signal.SIGINT:
        assert json.loads(out.strip().splitlines()[-1])["interrupted"] is True
    rerun = _start(config, export, store)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    source = export_rows(export)
    with_email = [r for r in source if r["Work Email"].strip()]
    # Every row is logged once as processed (in one run or the other); failed rows may be logged twice.
    assert scalar(store, "SELECT count(*) FROM events WHERE status = 'processed'") == len(with_email)
    assert summary["applied"] + summary["unchanged"] == len(with_email)
    assert scalar(store, "SELECT count(*) FROM local_users") == len(
        {r["Work Email"].removeprefix("✅ ") for r in with_email}
    )
    runs = rows(
        store, "SELECT recipient, count(*) FROM local_workflow_runs GROUP BY recipient HAVING count(*) > 1"
    )
    assert runs == []
    high = [r for r in with_email if int(r["ICP Score"]) >= 80]
    assert scalar(store, "SELECT count(*) FROM local_workflow_runs") == len(high)
    # Each row's actions are logged with its event, never without it.
    assert scalar(store, "SELECT count(*) FROM actions WHERE event_id NOT IN (SELECT id FROM events)") == 0


def test_backfill_shows_a_progress_bar(store, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "backfill",
            str(config_with(tmp_path)),
            str(LEADS),
            "--env",
            "development",
            "--store",
            store.url,
            "--progress",
            "--limit",
            "40",
            "--batch-size",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "backfill" in result.stderr and "40/40" in result.stderr
    assert (
        json.loads(result.stdout.strip().splitlines()[-1])["applied"]
        + json.loads(result.stdout.strip().splitlines()[-1])["failed"]
        == 40
    )


def test_the_cli_batch_size_default_is_the_backfills_own():
    from workbench.backfill.runner import DEFAULT_BATCH

    (option,) = [p for p in main.commands["backfill"].params if p.name == "batch_size"]
    assert option.default == DEFAULT_BATCH
    assert f"({DEFAULT_BATCH})" in (ROOT / "README.md").read_text()

"""A re-run compared in bulk: rows remembered by fingerprint are counted as they ended without
being planned, as long as nothing else applied their targets since."""

import json

import duckdb
import pytest

from scripts.make_samples import write_rows
from workbench.backfill import Backfill, CsvRows, TableRows
from workbench.backfill.fingerprints import BulkFingerprints, row_fingerprint
from workbench.clay import ExportReader, body_builder, load_export, row_to_body
from workbench.config import load_config
from workbench.errors import SinkError
from workbench.sinks.local import LocalSink

from .conftest import LEADS, SAMPLES, config_with, email_of, export_rows, rows, run, scalar
from .test_sync import (
    HEADER,
    SET_ALL,
    config_of,
    data,
    identify,
    live_service,
    named_config,
    post_live,
    users,
)


def with_email():
    return sum(1 for r in export_rows(LEADS) if email_of(r))


@pytest.mark.parametrize("template", ["config", "none"])
def test_duckdb_fingerprints_every_row_as_python_does(template, tmp_path):
    body_template = load_config(config_with(tmp_path)).body_template if template == "config" else None
    exports = [p for p in sorted(SAMPLES.glob("clay_*.csv")) if p.stat().st_size > 0]
    assert len(exports) >= 4
    for path in exports:
        with ExportReader(path) as reader:
            reads = body_builder(reader.columns, body_template).reads
            python = [row_fingerprint(cells, reads) for _, cells in reader.rows()]
            bulk = BulkFingerprints(reader.columns, reads, csv=path).fingerprints()
        assert bulk == python, path.name
    # Two rows that differ only where the cells are cut apart differ.
    one = row_fingerprint(["a\x1fb", "c"], [0, 1])
    assert one != row_fingerprint(["a", "b\x1fc"], [0, 1])
    assert row_fingerprint([None, "x"], [0, 1]) == row_fingerprint(["", "x"], [0, 1])


def test_a_rerun_after_a_live_row_changed_a_user_applies_the_export_again(any_store, tmp_path):
    """The live row carries the export row's key, so it applies the same target as that row: the
    re-run finds the target changed (not the row remembered) and applies the export's payload."""
    config = config_with(tmp_path, mappings=[identify()], idempotency={"key": "body.email"})
    template = load_config(config).body_template
    assert run(any_store, config).counts["applied"] == with_email()
    again = run(any_store, config)
    assert (again.counts["applied"], again.counts["unchanged"]) == (0, with_email())

    row = next(r for r in export_rows(LEADS) if email_of(r))
    changed = {**row, "Full Name": "Renamed Live"}
    service = live_service(config, any_store)
    assert post_live(service, changed, template).body["status"] == "processed"
    assert users(any_store)[email_of(row)]["name"] == "Renamed Live"

    third = run(any_store, config)
    assert (third.counts["applied"], third.counts["unchanged"]) == (1, with_email() - 1)
    assert users(any_store)[email_of(row)]["name"] == row["Full Name"]
    assert run(any_store, config).counts["applied"] == 0


def test_a_run_of_another_mapping_in_between_makes_the_first_apply_again(any_store, tmp_path):
    first = named_config(tmp_path, "first", [identify()])
    other = named_config(tmp_path, "other", [identify(phone_number="body.phone_number")])
    run(any_store, first)
    assert run(any_store, other).counts["applied"] > 0
    back = run(any_store, first)
    phoned = sum(1 for r in export_rows(LEADS) if email_of(r) and r["Phone Number"].strip())
    assert back.counts["applied"] == phoned > 0  # those the other mapping changed
    assert run(any_store, first).counts["applied"] == 0


def test_a_new_row_setting_a_target_before_a_remembered_row_leaves_it_as_that_row_does(store, tmp_path):
    """Dan's new row sets Acme's object before Ann's remembered row, which sets it too: Ann's row
    goes again, so the object ends as a fresh backfill of the export leaves it (the last row wins)."""
    config = config_of(tmp_path, "set", SET_ALL[:2])
    export = tmp_path / "leads.csv"
    ann = ["ann@acme.com", "Ann", "acme.com", "Acme"]
    cy = ["cy@initech.co", "Cy", "initech.co", "Initech"]
    write_rows(export, HEADER, [ann, cy])
    assert run(store, config, export=export).counts["applied"] == 2
    write_rows(export, HEADER, [["dan@acme.com", "Dan", "acme.com", "ACME Corp"], ann, cy])
    again = run(store, config, export=export)
    assert (again.counts["applied"], again.counts["unchanged"]) == (2, 1)
    names = {i: data(d)["name"] for i, d in rows(store, "SELECT id, data FROM local_objects")}
    assert names == {"acme.com": "Acme", "initech.co": "Initech"}
    assert run(store, config, export=export).counts["unchanged"] == 3


def test_rows_that_failed_before_anything_was_sent_count_as_failed_again(store, tmp_path):
    config = config_with(tmp_path, mappings=[identify()])
    first = run(store, config)
    failed = first.counts["failed"]
    assert failed == sum(1 for r in export_rows(LEADS) if not email_of(r)) > 0
    again = run(store, config)
    assert (again.counts["failed"], again.counts["unchanged"]) == (failed, with_email())
    # Asked for the failures file, they are planned again and written to it.
    report = tmp_path / "failures.csv"
    third = run(store, config, failures=report)
    assert third.counts["failed"] == failed
    assert len(export_rows(report)) == failed


def test_a_row_remembered_as_failed_is_not_logged_again_once_the_run_sent_something(store, tmp_path):
    """A remembered row that applied a target is planned again once the run has sent something
    (an earlier row may just have changed that target); one that failed before anything was sent
    applies none, so it ends as it did and its failure stays logged once."""
    config = config_of(tmp_path, "identify", [identify()])
    export = tmp_path / "leads.csv"
    write_rows(export, HEADER, [["ann@acme.com", "Ann", "acme.com", "Acme"], ["", "Bo", "acme.com", "Acme"]])
    first = run(store, config, export=export)
    assert (first.counts["applied"], first.counts["failed"]) == (1, 1)
    write_rows(
        export, HEADER, [["ann@acme.com", "Ann B.", "acme.com", "Acme"], ["", "Bo", "acme.com", "Acme"]]
    )
    again = run(store, config, export=export)
    assert (again.counts["applied"], again.counts["failed"]) == (1, 1)
    assert scalar(store, "SELECT count(*) FROM events WHERE status = 'failed'") == 1


def test_rows_a_sink_failed_or_queued_are_sent_again(store, tmp_path):
    """A row is remembered only when its outcome depended on nothing but the row: one the sink
    refused is sent again by the next run."""
    config = load_config(config_with(tmp_path, mappings=[identify()]))

    class Refusing:
        name, transactional, bulk = "refusing", False, False

        def apply(self, request):
            if request.payload["id"].startswith("a"):
                raise SinkError("refused")
            return {"ok": True}

    refused = sum(1 for r in export_rows(LEADS) if (email_of(r) or "").startswith("a"))
    assert refused > 0
    first = Backfill(config, "development", store, Refusing()).run(CsvRows(LEADS), progress=False)
    assert first.counts["failed"] - sum(1 for r in export_rows(LEADS) if not email_of(r)) == refused
    again = Backfill(config, "development", store, LocalSink(store)).run(CsvRows(LEADS), progress=False)
    assert again.counts["applied"] == refused


def test_a_loaded_table_is_compared_in_bulk_too(store, tmp_path):
    con = duckdb.connect(str(tmp_path / "clay.duckdb"))
    table = load_export(LEADS, con).table
    config = load_config(config_with(tmp_path, mappings=[identify()]))

    def table_run(**options):
        job = Backfill(config, "development", store, LocalSink(store), **options)
        return job.run(TableRows(con, table), progress=False)

    assert table_run().counts["applied"] == with_email()
    assert table_run().counts["unchanged"] == with_email()
    assert table_run(full=True).counts["applied"] == with_email()
    con.close()


def test_full_sends_every_row_again_after_a_rerun(store, tmp_path):
    config = config_with(tmp_path, mappings=[identify()])
    run(store, config)
    assert run(store, config).counts["unchanged"] == with_email()
    assert run(store, config, full=True).counts["applied"] == with_email()
    assert json.dumps(run(store, config).counts["unchanged"]) == str(with_email())


@pytest.mark.parametrize(
    "scope",
    [("clay", "development", "lead.enriched"), ('cl"ay', "dév", "ev\ud800t"), ("a", "b", "")],
)
def test_a_rows_identity_is_the_engines_whatever_writes_it(scope):
    """Live rows and backfilled rows share the memory only if both name a row alike."""
    from workbench.engine import content_hash, row_identity
    from workbench.targets import row_of

    for key in ("k", "k\ud800", "", "x" * 300):
        assert row_of(*scope, key, None) == row_identity(*scope, key)
    body = {"email": "a@b.c", "n": 1.5}
    assert row_of(*scope, None, body) == row_identity(*scope, content_hash(body))


def test_a_failed_row_counted_again_in_bulk_stays_whole_and_replayable_in_the_log(any_store, tmp_path):
    """A re-run counts the rows that failed before anything was sent without logging them again:
    the first run's entries hold their whole bodies, and replaying one after the mapping is fixed
    applies it, which the next backfill then finds unchanged."""
    mistyped = {**identify(), "params": {"id": "body.emial", "email": "body.email"}}
    config = config_with(tmp_path, mappings=[mistyped])
    template = load_config(config).body_template
    first = run(any_store, config)
    assert first.counts["failed"] == 200
    again = run(any_store, config)
    assert again.counts["failed"] == 200
    logged = rows(any_store, "SELECT id, body FROM events WHERE status = 'failed' ORDER BY id")
    assert len(logged) == 200  # once, by the first run

    row = next(r for r in export_rows(LEADS) if email_of(r))
    whole = row_to_body(row, template, "lead.enriched")
    event_id = next(i for i, body in logged if json.loads(body) == whole)
    entry = any_store.get_event(event_id)
    assert json.loads(entry["body"]) == whole
    assert entry["status"] == "failed" and "body.emial" in entry["actions"][0]["error"]

    config_with(tmp_path, mappings=[identify()])  # the mapping fixed, in the same file
    assert live_service(config, any_store).replay(event_id)["status"] == "processed"
    assert email_of(row) in users(any_store)
    fixed = run(any_store, config)
    assert (fixed.counts["applied"], fixed.counts["unchanged"]) == (with_email() - 1, 1)

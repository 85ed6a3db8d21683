"""Rows planned in bulk by DuckDB (`backfill.columnar`) end exactly as the per-row path leaves them:
the same users, the same memory of what was applied, the same rows remembered, the same counts
and failures, on any cells a Clay export may hold."""

import csv
import json

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scripts.make_samples import write_rows
from workbench.backfill import Backfill, TableRows, columnar
from workbench.clay import ExportError, load_export
from workbench.config import load_config
from workbench.errors import NotReplayable
from workbench.sinks.local import LocalSink
from workbench.store import Store, checkpoints

from .conftest import LEADS, batch_entries, config_with, email_of, export_rows, rows, rows_in_batches, run
from .test_sync import live_service

COLUMNS = [
    "Work Email",
    "Full Name",
    "Phone Number",
    "Profile Picture",
    "Job Title",
    "Company Name",
    "Company Domain",
    "LinkedIn URL",
    "ICP Score",
    "Notes",  # not read by the template
]

# Cells as Clay writes them, and the ones that make a row unusual: marks, white space of every
# kind at the edges, controls, quotes and backslashes, line ends, other scripts.
EDGES = ["", " ", "  ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\ufeff", "\u200b", "\x0b", "\x1f"]
MARKS = ["", "✅", "✅ ", "✅  ", "✔️ ", "✔ ", "☑️ ", "☑", "❌ ", "✖️ ", "⛔", "🚫 ", "✅\ufe0f "]
WORDS = [
    "Ann",
    "Zoë",
    "O'Brien",
    'say "hi"',
    "back\\slash",
    "a\nb",
    "a\r\nb",
    "tab\there",
    "名前",
    "😀",
    "x\x00y",
]
WORDS += ["{}", "null", "/", "#", "a/b", "a#b", "☑ mid", "end ✅"]
NUMBERS = ["85", "0", "-3", "007", "-0", "85.5", "1,000", "90%", " 85", "85 ", "✅ 85", "✅ 85 ", "abc", ""]
NUMBERS += ["1e3", "123456789012345", "1234567890123456", "+5", "nan"]


def cell_text(words):
    return st.builds(
        lambda mark, before, word, after: mark + before + word + after,
        st.sampled_from(MARKS),
        st.sampled_from(EDGES),
        st.sampled_from(words),
        st.sampled_from(EDGES),
    ) | st.just("")


EMAILS = [f"u{i}@x.io" for i in range(6)] + ["a/b@x.io", "a#b@x.io", "x" * 300 + "@x.io"]
ROW = st.fixed_dictionaries(
    {
        "Work Email": st.sampled_from(EMAILS) | cell_text(EMAILS),
        "Full Name": cell_text(WORDS),
        "Phone Number": cell_text(["+1 415 555 0100", "555"]),
        "Profile Picture": cell_text(["https://x.io/p.jpg"]),
        "Job Title": cell_text(WORDS),
        "Company Name": cell_text(WORDS),
        "Company Domain": cell_text(["acme.com"]),
        "LinkedIn URL": cell_text(["https://linkedin.com/in/a"]),
        "ICP Score": st.sampled_from(NUMBERS) | cell_text(NUMBERS),
        "Notes": cell_text(WORDS),
    }
)
# Rows of plain cells, which the bulk path takes (those without a user id fail there).
PLAIN_ROW = st.fixed_dictionaries(
    {
        "Work Email": st.sampled_from([*EMAILS[:3], "", "❌ No email found"]),
        "Full Name": st.sampled_from(["Ann", "Zoë"]),
        "ICP Score": st.sampled_from(["70", "85"]),
    }
)
# Every export holds rows the bulk path takes, so each example compares both paths.
PLAIN = [
    {"Work Email": f"plain{i}@x.io", "Full Name": f"Plain {i}", "Job Title": "CTO", "ICP Score": str(70 + i)}
    for i in range(3)
]


def store_state(store):
    users = {k: json.loads(v) for k, v in rows(store, "SELECT id, data FROM local_users")}
    applied = sorted(
        rows(store, "SELECT target, payload_hash, row_fingerprint, row_config FROM applied_payloads")
    )
    remembered = sorted(rows(store, "SELECT fingerprint, config_digest, status FROM applied_rows"))
    return users, applied, remembered, logged_whole(store)


def logged_whole(store):
    """The log entries of rows that did not apply in bulk (failed ones above all), with their
    actions: all but their ids and times."""
    return sorted(
        rows(
            store,
            "SELECT e.status, e.event, e.origin, e.body, e.body_bytes, e.headers, e.idempotency_key, "
            "e.idempotency_note, e.error, a.position, a.mapping, a.action, a.status, a.params, a.payload, "
            "a.result, a.error, a.attempts FROM events e LEFT JOIN actions a ON a.event_id = e.id "
            "WHERE e.body NOT LIKE '{\"backfill_batch\"%' AND e.status != 'processed'",
        ),
        key=repr,
    )


def failures_of(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [(r["_row_number"], r["_status"], r["_reason"]) for r in csv.DictReader(f)]


def both_paths(tmp_path, name, export, config, seed=None, with_failures=True):
    """Run `export` into a store by each path (after `seed`, an export run by the per-row path
    into both); returns (bulk store, per-row store, their summaries and failures). Without
    `with_failures`, no failures file (DuckDB then reads only the cells the template reads)."""
    out = []
    for path in ("bulk", "per_row"):
        store = Store(f"sqlite:///{tmp_path / f'{name}-{path}.sqlite'}")
        if seed is not None:
            with columnar.disabled():
                run(store, config, export=seed)
        failures = tmp_path / f"{name}-{path}.csv" if with_failures else None
        if path == "bulk":
            summary = run(store, config, export=export, failures=failures)
        else:
            with columnar.disabled():
                summary = run(store, config, export=export, failures=failures)
        out.append((store, summary.counts, failures_of(failures) if failures else None))
    return out


# A remembered row found unchanged after something was sent: its target stays claimed by the row
# before it that gives the same payload (cells differing in a mark), whichever path takes them.
ANN = {"Work Email": "u1@x.io", "Full Name": "Ann", "ICP Score": "70"}


@st.composite
def export_and_seed(draw):
    """An export, and a seed run before it: rows of its own and some of the export's (remembered).
    The export may repeat a row with a cell marked `✅ `: the same payload, another fingerprint."""
    export = draw(st.lists(ROW | PLAIN_ROW, min_size=1, max_size=10))
    for row in draw(st.lists(st.sampled_from(export), max_size=2)):
        column = draw(st.sampled_from(sorted(row)))
        export.insert(draw(st.integers(0, len(export))), {**row, column: "✅ " + row[column]})
    again = draw(st.lists(st.sampled_from(export), max_size=3))
    return export, draw(st.permutations([*draw(st.lists(ROW, max_size=3)), *again]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=export_and_seed(), with_failures=st.booleans())
@example(
    case=([{**ANN, "Work Email": "u2@x.io"}, {**ANN, "Full Name": "✅ Ann"}, ANN], [ANN]), with_failures=True
)
@example(case=([{**ANN, "Work Email": ""}, ANN], [{**ANN, "Work Email": ""}]), with_failures=True)  # failed
@example(case=([{**ANN, "Full Name": " Ann"}, {**ANN, "Work Email": ""}], []), with_failures=False)
def test_rows_planned_in_bulk_end_as_the_per_row_path_leaves_them(tmp_path_factory, case, with_failures):
    export, seed = case
    tmp_path = tmp_path_factory.mktemp("columnar")
    path, seeded = tmp_path / "export.csv", tmp_path / "seed.csv"
    write_rows(path, COLUMNS, [*export, *PLAIN])
    write_rows(seeded, COLUMNS, seed)
    config = config_with(tmp_path)
    (bulk, bulk_counts, bulk_failures), (per_row, counts, failures) = both_paths(
        tmp_path, "first", path, config, seeded, with_failures
    )
    assert bulk_counts == counts
    assert bulk_failures == failures
    assert store_state(bulk) == store_state(per_row)
    assert set(rows_in_batches(bulk)) >= {len(export) + i for i in range(1, len(PLAIN) + 1)}

    # Re-runs after a mapped property changed (every row applied anew), each then run unchanged.
    for name in ["body.job_title", {"template": "{{body.full_name}} ({{body.icp_score}}, {{body.event}})"}]:
        changed = json.loads(config.read_text())
        changed["environments"]["development"]["mappings"][0]["params"]["name"] = name
        config.write_text(json.dumps(changed))
        for time in range(2):
            with columnar.disabled():
                again = run(per_row, config, export=path).counts
            entries = len(batch_entries(bulk))
            assert run(bulk, config, export=path).counts == again
            assert store_state(bulk) == store_state(per_row)
            if time == 0:  # the plain rows were applied anew, in bulk
                assert len(batch_entries(bulk)) > entries


def test_a_batch_entry_points_at_the_rows_and_is_not_replayed(store, tmp_path):
    summary = run(store)
    applied = [n for n, r in enumerate(export_rows(LEADS), start=1) if email_of(r)]
    assert summary.counts["applied"] == len(applied)
    entries = batch_entries(store)
    assert entries and sum(e["applied"] for e in entries) == len(applied)
    assert all(e["export"] == str(LEADS) for e in entries)
    (event_id,) = rows(store, "SELECT id FROM events WHERE body LIKE '{\"backfill_batch\"%' LIMIT 1")[0]
    entry = store.get_event(event_id)
    assert (
        entry["status"] == "processed" and entry["actions"][0]["result"]["applied"] == entries[0]["applied"]
    )
    with pytest.raises(NotReplayable, match="run the backfill of that export again"):
        live_service(config_with(tmp_path), store).replay(event_id)
    assert store.get_event(event_id) == entry


def test_a_row_without_a_user_id_fails_in_bulk_logged_whole_and_can_be_replayed(store, tmp_path, monkeypatch):
    failing = [n for n, r in enumerate(export_rows(LEADS), start=1) if not email_of(r)]
    taken = []
    original = columnar.OrdinaryBatches._failed

    def counted(self, rows, now):
        taken.extend(r.number for r in rows)
        return original(self, rows, now)

    monkeypatch.setattr(columnar.OrdinaryBatches, "_failed", counted)
    summary = run(store, failures=tmp_path / "failed.csv")
    assert failing and taken == failing and summary.counts["failed"] == len(failing)
    assert [int(n) for n, *_ in failures_of(tmp_path / "failed.csv")] == failing
    (event_id, body), *_ = rows(store, "SELECT id, body FROM events WHERE status = 'failed' ORDER BY id")
    entry = store.get_event(event_id)
    assert json.loads(body)["full_name"] and "email" not in json.loads(body)
    assert entry["actions"][0]["error"] == "param `id`: path `body.email` resolved to nothing"
    assert entry["actions"][0]["payload"]["properties"] == json.loads(body)

    # The mapping mended (the user named by another key), the logged row is replayed from its body.
    mended = json.loads(config_with(tmp_path).read_text())
    mended["environments"]["development"]["mappings"][0]["params"]["id"] = "body.full_name"
    config = tmp_path / "mended.json"
    config.write_text(json.dumps(mended))
    replayed = live_service(config, store).replay(event_id)
    assert replayed["status"] == "processed" and replayed["replays"] == 1
    user = json.loads(body)["full_name"]
    assert rows(store, "SELECT count(*) FROM local_users WHERE id = :u", u=user) == [(1,)]

    # A re-run remembers them as failed: nothing is logged twice.
    logged = rows(store, "SELECT count(*) FROM events")
    again = run(store)
    assert again.counts["failed"] == len(failing) and rows(store, "SELECT count(*) FROM events") == logged


def test_rows_naming_one_user_are_applied_in_export_order_whichever_path_takes_them(store, tmp_path):
    path = tmp_path / "twice.csv"
    named = [["a@x.io", "A"], ["b@x.io", "B"], ["✅ a@x.io", "A2"], ["✅ a@x.io\t", "A3"]]
    write_rows(path, ["Work Email", "Full Name"], named)
    summary = run(store, export=path, batch_size=100)
    assert summary.counts["applied"] == 4
    assert rows_in_batches(store) == [1, 2, 3]  # the last is not ordinary (a tab at its end)
    name = rows(store, "SELECT data FROM local_users WHERE id = 'a@x.io'")[0][0]
    assert json.loads(name)["name"] == "A3"
    again = run(store, export=path, batch_size=100)
    assert (again.counts["applied"], again.counts["unchanged"]) == (0, 4)


def test_a_run_stopped_midway_stops_duckdb_and_keeps_whole_batches(store, tmp_path, monkeypatch):
    path = tmp_path / "many.csv"
    write_rows(path, ["Work Email", "Full Name"], [[f"u{i}@x.io", f"U{i}"] for i in range(9000)])
    calls = []
    original = columnar.OrdinaryBatches.write

    def write_then_stop(self, conn, batch, now):
        calls.append(len(batch))
        if len(calls) == 1:
            return original(self, conn, batch, now)
        raise KeyboardInterrupt

    monkeypatch.setattr(columnar.OrdinaryBatches, "write", write_then_stop)
    summary = run(store, export=path, batch_size=200)
    assert summary.interrupted and summary.counts["applied"] == calls[0]
    assert rows(store, "SELECT count(*) FROM local_users")[0][0] == calls[0]
    monkeypatch.setattr(columnar.OrdinaryBatches, "write", original)
    rest = run(store, export=path, batch_size=200)
    assert (rest.counts["applied"], rest.counts["unchanged"]) == (9000 - calls[0], calls[0])


@pytest.mark.parametrize("bad_at", [3, 4500])
def test_a_line_duckdb_cannot_read_is_reported_as_the_per_row_path_reports_it(tmp_path, bad_at):
    path = tmp_path / "bad.csv"
    good = [[f"u{i}@x.io", f"U{i}"] for i in range(6000)]
    write_rows(path, ["Work Email", "Full Name"], good)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(bad_at, '"only one field"\r\n')  # line `bad_at + 1` of the file
    path.write_text("".join(lines), encoding="utf-8")
    kept = []
    for name in ("bulk", "per_row"):
        store = Store(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
        with pytest.raises(ExportError, match=f"line {bad_at + 1}"):
            if name == "bulk":
                run(store, export=path, batch_size=1000)
            else:
                with columnar.disabled():
                    run(store, export=path, batch_size=1000)
        kept.append(store_state(store))
    assert kept[0] == kept[1]


def test_a_loaded_table_is_planned_in_bulk_as_the_per_row_path_plans_it(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    loaded = load_export(LEADS, con)
    config = load_config(config_with(tmp_path))
    states = []
    for name in ("bulk", "per_row"):
        store = Store(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
        job = Backfill(config, "development", store, LocalSink(store), batch_size=50)
        if name == "bulk":
            summary = job.run(TableRows(con, loaded.table), progress=False)
            entries = batch_entries(store)
            assert entries and {e["table"] for e in entries} == {loaded.table}
            assert rows_in_batches(store) == [n for n, r in enumerate(export_rows(LEADS), 1) if email_of(r)]
        else:
            with columnar.disabled():
                summary = job.run(TableRows(con, loaded.table), progress=False)
        states.append((summary.counts, store_state(store)))
    assert states[0] == states[1]
    con.close()


def test_the_log_is_checkpointed_beside_the_batches_and_the_store_ends_the_same(tmp_path, monkeypatch):
    path = tmp_path / "many.csv"
    write_rows(
        path, ["Work Email", "Full Name"], [[f"u{i}@x.io" if i % 7 else "", f"U{i}"] for i in range(6000)]
    )
    made = []
    original = checkpoints.BackgroundCheckpoints.__init__

    def kept(self, *args):
        made.append(self)
        original(self, *args)

    monkeypatch.setattr(checkpoints.BackgroundCheckpoints, "__init__", kept)
    states = []
    for name in ("beside", "plain"):
        store = Store(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
        if name == "beside":
            summary = run(store, export=path, batch_size=500)
        else:
            with checkpoints.disabled():
                summary = run(store, export=path, batch_size=500)
        states.append((summary.counts, store_state(store)))
        store.close()
    assert len(made) == 1 and not made[0]._thread.is_alive()  # one for the run, stopped with it
    assert states[0] == states[1] and states[0][0]["failed"] == 6000 // 7 + 1

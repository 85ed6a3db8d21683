"""A backfill is a sync: a re-run applies exactly what changed since what was last applied, and says so."""

import json

import pytest
from click.testing import CliRunner

from scripts.make_samples import write_rows
from tests.fakes.knock import API_KEY, fake_knock  # noqa: F401 (fixture)
from workbench.backfill import Backfill, CsvRows
from workbench.backfill.sources import estimate_rows
from workbench.clay import ExportReader, row_to_body
from workbench.cli import main
from workbench.config import ConfigSet, load_config
from workbench.engine import Engine, SourceEvent, utcnow
from workbench.service import SourceService
from workbench.sinks import make_sink
from workbench.sinks.local import LocalSink
from workbench.store import Store

from .conftest import CONFIG, LEADS, SAMPLES, config_with, email_of, export_rows, rows, run, scalar

SECRET = "whsec-sync"


def identify(**extra):
    return {
        "event": "lead.enriched",
        "action": "users_identify",
        "params": {"id": "body.email", "name": "body.full_name", "email": "body.email", **extra},
    }


TRIGGER = {
    "event": "lead.enriched",
    "action": "workflows_trigger",
    "when": [{"path": "body.icp_score", "as": "number", "gte": 80}],
    "params": {
        "key": {"value": "high-intent"},
        "recipients": "body.email",
        "data": "body",
    },
}
# Low-ICP leads are skipped; the widened mapping identifies every lead, with the phone number too.
NARROW = [{**identify(), "when": [{"path": "body.icp_score", "as": "number", "gte": 50}]}, TRIGGER]
WIDE = [identify(phone_number="body.phone_number"), TRIGGER]


def named_config(tmp_path, name, mappings):
    """The default config (its body template too) with these development mappings, in its own folder."""
    folder = tmp_path / name
    folder.mkdir()
    return config_with(folder, mappings=mappings)


def data(value):
    return json.loads(value) if isinstance(value, str) else value  # JSON text on SQLite


def users(store):
    return {i: data(d) for i, d in rows(store, "SELECT id, data FROM local_users")}


def runs(store):
    found = rows(store, "SELECT workflow, recipient, data FROM local_workflow_runs")
    return sorted((w, r, json.dumps(data(d), sort_keys=True)) for w, r, d in found)


def test_widening_the_mapping_applies_the_skipped_rows_and_the_changed_payloads(any_store, tmp_path):
    source = export_rows(LEADS)
    score = [int(r["ICP Score"]) for r in source]
    emailed = [email_of(r) is not None for r in source]
    phoned = [bool(r["Phone Number"].strip()) for r in source]
    narrow, wide = named_config(tmp_path, "narrow", NARROW), named_config(tmp_path, "wide", WIDE)

    first = run(any_store, narrow)
    low = [s < 50 for s in score]
    assert first.counts["skipped"] == sum(low) > 0
    assert first.counts["failed"] == sum(not e and not lo for e, lo in zip(emailed, low, strict=True))
    assert first.counts["applied"] == sum(e and not lo for e, lo in zip(emailed, low, strict=True))

    second = run(any_store, wide)
    # Applied: the rows the condition skipped, and those whose payload gained a phone number.
    applied = sum(e and (lo or p) for e, lo, p in zip(emailed, low, phoned, strict=True))
    unchanged = sum(e and not lo and not p for e, lo, p in zip(emailed, low, phoned, strict=True))
    assert (second.counts["applied"], second.counts["unchanged"]) == (applied, unchanged)
    assert unchanged > 0 and applied > first.counts["skipped"] - 17
    # Every lead without an email now fails, the formerly skipped ones included.
    assert second.counts["failed"] == emailed.count(False) > first.counts["failed"]
    assert second.counts["skipped"] == 0

    third = run(any_store, wide)
    assert third.counts["applied"] == 0
    assert third.counts["unchanged"] == applied + unchanged
    assert third.counts["failed"] == second.counts["failed"]

    # The store ends as a fresh backfill with the widened mapping leaves it.
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    try:
        assert run(fresh, wide).counts["applied"] == applied + unchanged
        assert users(any_store) == users(fresh)
        assert runs(any_store) == runs(fresh)
        assert len(runs(fresh)) == sum(e and s >= 80 for e, s in zip(emailed, score, strict=True)) > 0
    finally:
        fresh.close()
    # Unchanged rows were not logged again; applied and failed ones were, but for rows that
    # failed under the same config before anything was sent (the third run's: the second run
    # logged their failure, which stays replayable).
    logged = scalar(any_store, "SELECT count(*) FROM events")
    assert logged == sum(s.counts["applied"] + s.counts["failed"] for s in (first, second))
    assert scalar(any_store, "SELECT count(*) FROM events WHERE status = 'failed'") == (
        first.counts["failed"] + second.counts["failed"]
    )


# -- every action type -----------------------------------------------------------------------


def act(action, **params):
    return {"event": "lead.enriched", "action": action, "params": params}


COMPANY = {"collection": {"value": "companies"}, "id": "body.company_domain"}
MEMBERS = {"key": {"value": "leads"}, "users": "body.email"}
WELCOME = {"key": {"value": "welcome"}, "cancellation_key": {"template": "welcome-{{body.email}}"}}
SET_ALL = [
    identify(),
    act("objects_set", **COMPANY, name="body.company_name"),
    act("tenants_set", id="body.company_domain"),
    act("objects_subscribe", **COMPANY, recipients="body.email"),
    act("audiences_add_member", **MEMBERS),
    act("workflows_trigger", **WELCOME, recipients="body.email"),
]
DELETE_ALL = [
    act("users_delete", id="body.email"),
    act("objects_delete", **COMPANY),
    act("tenants_delete", id="body.company_domain"),
    act("objects_unsubscribe", **COMPANY, recipients="body.email"),
    act("audiences_remove_member", **MEMBERS),
    act("workflows_cancel", **WELCOME),
]
HEADER = ["Email", "Full Name", "Company Domain", "Company Name"]
LEADS_OF_TWO_COMPANIES = [
    ["ann@acme.com", "Ann", "acme.com", "Acme"],
    ["bob@acme.com", "Bob", "acme.com", "Acme Inc"],  # the same company, set again with another name
    ["cy@initech.co", "Cy", "initech.co", "Initech"],
]


def small_export(tmp_path):
    path = tmp_path / "leads.csv"
    write_rows(path, HEADER, LEADS_OF_TWO_COMPANIES)
    return path


def config_of(tmp_path, name, mappings, **env):
    folder = tmp_path / name
    folder.mkdir()
    data = json.loads(CONFIG.read_text())
    data["clay"] = {}  # every column under its snake_case name
    data["environments"]["development"].update(mappings=mappings, **env)
    path = folder / "clay.json"
    path.write_text(json.dumps(data))
    return path


def local_state(store):
    return {
        "users": users(store),
        "objects": sorted(
            (c, i, data(d)["name"])
            for c, i, d in rows(store, "SELECT collection, id, data FROM local_objects")
        ),
        "tenants": sorted(rows(store, "SELECT id FROM local_tenants")),
        "subscriptions": sorted(
            rows(store, "SELECT collection, object_id, recipient FROM local_subscriptions")
        ),
        "members": sorted(rows(store, "SELECT audience_key, user_id FROM local_audience_members")),
        "runs": sorted(rows(store, "SELECT workflow, recipient, status FROM local_workflow_runs")),
    }


def test_every_action_type_is_applied_once_and_a_delete_already_applied_is_unchanged(any_store, tmp_path):
    export = small_export(tmp_path)
    set_all, delete_all = config_of(tmp_path, "set", SET_ALL), config_of(tmp_path, "delete", DELETE_ALL)
    assert run(any_store, set_all, export=export).counts["applied"] == 3
    state = local_state(any_store)
    assert state["objects"][0][:2] == ("companies", "acme.com")
    assert state["objects"][0][2] == "Acme Inc"  # the export's last row wins
    assert len(state["runs"]) == 3 and len(state["subscriptions"]) == 3 and len(state["members"]) == 3
    again = run(any_store, set_all, export=export)
    assert (again.counts["applied"], again.counts["unchanged"]) == (0, 3)
    assert local_state(any_store) == state  # nothing triggered or written twice

    assert run(any_store, delete_all, export=export).counts["applied"] == 3
    emptied = local_state(any_store)
    assert not any(emptied[k] for k in ("users", "objects", "tenants", "subscriptions", "members"))
    assert {status for *_, status in emptied["runs"]} == {"cancelled"}
    deleted_again = run(any_store, delete_all, export=export)
    assert (deleted_again.counts["applied"], deleted_again.counts["unchanged"]) == (0, 3)

    # Setting them again after the deletes is a change: applied, in the export's order.
    back = run(any_store, set_all, export=export)
    assert back.counts["applied"] == 3
    restored = local_state(any_store)
    assert {k: restored[k] for k in ("users", "objects", "tenants", "subscriptions", "members")} == {
        k: state[k] for k in ("users", "objects", "tenants", "subscriptions", "members")
    }
    # A trigger runs once per row, mapping and payload: the same rows do not trigger again.
    assert len(restored["runs"]) == 3


@pytest.fixture
def bulk_knock(fake_knock):  # noqa: F811
    return fake_knock


def knock_run(store, config, export, fake, **options):
    cfg = load_config(config)
    sink = make_sink(cfg.environment("development").sink, store, {"KNOCK_API_KEY": API_KEY})
    return Backfill(cfg, "development", store, sink, **options).run(CsvRows(export), progress=False)


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "one-by-one"])
def test_into_knock_a_rerun_sends_nothing_and_the_deletes_once(any_store, tmp_path, bulk_knock, bulk):
    export = small_export(tmp_path)
    sink = {"type": "knock", "api_key": {"$env": "KNOCK_API_KEY"}, "base_url": bulk_knock.url}
    set_all = config_of(tmp_path, "set", SET_ALL, sink=sink)
    delete_all = config_of(tmp_path, "delete", DELETE_ALL, sink=sink)
    bulk_knock.state.workflows.add("welcome")
    bulk_knock.state.audiences.add("leads")
    assert knock_run(any_store, set_all, export, bulk_knock, bulk=bulk).counts["applied"] == 3
    sent = len(bulk_knock.calls())
    assert set(bulk_knock.state.users) == {"ann@acme.com", "bob@acme.com", "cy@initech.co"}
    assert len(bulk_knock.runs("welcome")) == 3
    again = knock_run(any_store, set_all, export, bulk_knock, bulk=bulk)
    assert (again.counts["unchanged"], len(bulk_knock.calls())) == (3, sent)

    assert knock_run(any_store, delete_all, export, bulk_knock, bulk=bulk).counts["applied"] == 3
    assert bulk_knock.state.users == {} and bulk_knock.state.tenants == {}
    sent = len(bulk_knock.calls())
    deleted_again = knock_run(any_store, delete_all, export, bulk_knock, bulk=bulk)
    assert (deleted_again.counts["unchanged"], len(bulk_knock.calls())) == (3, sent)


def test_retrigger_and_full_send_again_on_purpose(store, tmp_path):
    export = small_export(tmp_path)
    config = config_of(tmp_path, "set", SET_ALL)
    run(store, config, export=export)
    triggered = scalar(store, "SELECT count(*) FROM local_workflow_runs")
    retriggered = run(store, config, export=export, retrigger=True)
    assert retriggered.counts["applied"] == 3
    assert scalar(store, "SELECT count(*) FROM local_workflow_runs") == 2 * triggered
    # Only the triggers went again: each row logged one sent action, the rest unchanged.
    sent = rows(
        store,
        "SELECT action FROM actions WHERE status = 'success' AND event_id IN "
        "(SELECT id FROM events ORDER BY received_at DESC, id DESC LIMIT 3)",
    )
    assert {a for (a,) in sent} == {"workflows_trigger"}
    # --full sends every other action again; the triggers only with --retrigger.
    full = run(store, config, export=export, full=True)
    assert full.counts["applied"] == 3
    assert scalar(store, "SELECT count(*) FROM local_workflow_runs") == 2 * triggered
    sent = rows(
        store,
        "SELECT DISTINCT action FROM actions WHERE status = 'success' AND event_id IN "
        "(SELECT id FROM events ORDER BY received_at DESC, id DESC LIMIT 3)",
    )
    assert len(sent) == len(SET_ALL) - 1 and ("workflows_trigger",) not in sent
    run(store, config, export=export, full=True, retrigger=True)
    assert scalar(store, "SELECT count(*) FROM local_workflow_runs") == 3 * triggered


# -- live rows share the memory ----------------------------------------------------------------


def live_service(config, store):
    return SourceService(ConfigSet([config]), store, environ={"CLAY_SIGNING_SECRET_DEVELOPMENT": SECRET})


def post_live(service, row, template):
    body = json.dumps(row_to_body(row, template, "lead.enriched"))
    return service.receive("clay", "development", {"Authorization": f"Bearer {SECRET}"}, body)


def test_a_row_that_arrived_live_is_unchanged_in_an_export_and_the_reverse(any_store, tmp_path):
    config = config_with(tmp_path, mappings=[identify(), TRIGGER])
    template = load_config(config).body_template
    source = export_rows(LEADS)
    service = live_service(config, any_store)
    live_first = next(r for r in source if email_of(r) and int(r["ICP Score"]) >= 80)
    reply = post_live(service, live_first, template)
    assert reply.body["status"] == "processed" and len(reply.body["actions"]) == 2

    summary = run(any_store, config)
    with_email = sum(1 for r in source if email_of(r))
    assert (summary.counts["applied"], summary.counts["unchanged"]) == (with_email - 1, 1)
    assert (
        scalar(
            any_store, "SELECT count(*) FROM local_workflow_runs WHERE recipient = :r", r=email_of(live_first)
        )
        == 1
    )

    # The reverse: a backfilled row that then arrives live is applied as Clay sent it (the
    # receiver answers as Knock would), and the export stays unchanged against the memory.
    backfilled = next(r for r in source if email_of(r) and r is not live_first)
    assert post_live(service, backfilled, template).body["status"] == "processed"
    again = run(any_store, config)
    assert (again.counts["applied"], again.counts["unchanged"]) == (0, with_email)


def test_live_rows_logged_in_batches_share_the_memory_too(store, tmp_path):
    """The write-behind receiver logs settled live rows in batches (`record_processed`): what
    they applied is remembered as well."""
    config = load_config(config_with(tmp_path, mappings=[identify()]))
    env = config.environment("development")
    row = next(r for r in export_rows(LEADS) if email_of(r))
    body = json.dumps(row_to_body(row, config.body_template, "lead.enriched"))
    event = SourceEvent(body, {}, id="evt_live", received_at=utcnow())
    with store.unit_of_work() as conn:
        outcome = Engine(config, env, LocalSink(store).bind(conn)).process(event)
        store.record_processed(conn, [(event, "clay", "development", outcome)], event.received_at)
    summary = run(store, tmp_path / "clay.json")
    assert summary.counts["unchanged"] == 1
    assert summary.counts["applied"] == sum(1 for r in export_rows(LEADS) if email_of(r)) - 1


def test_the_progress_total_counts_rows_without_parsing_the_export(tmp_path):
    multi_line = tmp_path / "multi.csv"
    write_rows(
        multi_line, ["Notes", "Work Email"], [['said "hi" twice\nthen left', "a@x.io"], ["x\r\ny", "b@x.io"]]
    )
    for path in [LEADS, multi_line, *sorted(SAMPLES.glob("clay_*.csv"))]:
        with ExportReader(path, allow_empty=True) as reader:
            parsed = sum(1 for _ in reader.rows())
        assert estimate_rows(path) == estimate_rows(path, chunk=2) == parsed, path
    assert CsvRows(LEADS).total == 200


# -- the command line ------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(main, ["backfill", *map(str, args)])


def test_plan_prints_what_a_run_would_do_and_applies_nothing(store, tmp_path):
    config = named_config(tmp_path, "narrow", NARROW)
    result = invoke(config, LEADS, "--env", "development", "--store", store.url, "--plan")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout.strip().splitlines()[-1])
    assert scalar(store, "SELECT count(*) FROM events") == 0
    assert scalar(store, "SELECT count(*) FROM local_users") == 0
    assert "Plan (nothing applied):" in result.stdout
    summary = run(store, config)
    assert {k: v for k, v in plan["rows"].items() if k != "seconds"} == summary.counts
    assert plan["actions"]["users_identify"]["to apply"] == summary.counts["applied"]
    assert plan["actions"]["users_identify"]["skipped"] == summary.counts["skipped"]
    assert [r["row"] for r in plan["first_rows"]["skipped"]] == [
        n for n, r in enumerate(export_rows(LEADS), start=1) if int(r["ICP Score"]) < 50
    ][:3]
    # Against what is applied now, the widened mapping's plan is the diff.
    wide = named_config(tmp_path, "wide", WIDE)
    diff = json.loads(
        invoke(wide, LEADS, "--env", "development", "--store", store.url, "--plan").stdout.splitlines()[-1]
    )
    assert diff["actions"]["users_identify"]["unchanged"] > 0
    assert diff["rows"]["applied"] == run(store, wide).counts["applied"]


def test_a_path_no_column_gives_is_reported_with_did_you_mean(store, tmp_path):
    config = config_with(tmp_path, mappings=[identify(phone_number="body.phone_numbr")])
    result = invoke(config, LEADS, "--env", "development", "--store", store.url)
    assert result.exit_code == 0
    assert (
        "`body.phone_numbr` reads body key `phone_numbr`, which none of the body template's keys gives; "
        "did you mean `body.phone_number`?"
    ) in result.stderr
    assert "body.email" not in result.stderr  # paths the template gives are not reported


def test_a_run_where_every_row_fails_exits_1(store, tmp_path):
    config = config_with(tmp_path, mappings=[{**identify(), "params": {"id": "body.emial"}}])
    result = invoke(config, LEADS, "--env", "development", "--store", store.url)
    assert result.exit_code == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["failed"] == 200
    assert "did you mean `body.email`?" in result.stderr
    assert "Every row failed (200)" in result.stderr


def test_a_target_set_by_several_rows_ends_as_their_last_row_leaves_it(store, tmp_path):
    """When an earlier row's payload for a shared target changes, the later rows that set it go
    again, so the target ends as a fresh backfill of the export leaves it (the last row wins)."""
    config = config_of(tmp_path, "set", SET_ALL[:2])
    export = small_export(tmp_path)
    run(store, config, export=export)
    renamed = [["ann@acme.com", "Ann", "acme.com", "Acme Co"], *LEADS_OF_TWO_COMPANIES[1:]]
    write_rows(export, HEADER, renamed)
    again = run(store, config, export=export)
    # Ann's row changed (and Bob's row sets the same company after it); Cy's is unchanged.
    assert (again.counts["applied"], again.counts["unchanged"]) == (2, 1)
    names = {i: data(d)["name"] for i, d in rows(store, "SELECT id, data FROM local_objects")}
    assert names == {"acme.com": "Acme Inc", "initech.co": "Initech"}
    assert run(store, config, export=export).counts["unchanged"] == 3

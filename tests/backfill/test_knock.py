"""Backfill into Knock: the real knockapi SDK against the fake Knock API on loopback."""

import json
import re

import pytest
from click.testing import CliRunner

from tests.fakes.knock import API_KEY, SINK_RATE_SCALE, TEST_SPEED, fake_knock  # noqa: F401 (fixture)
from workbench.backfill import Backfill, CsvRows
from workbench.backfill.knock import BulkKnock
from workbench.cli import main
from workbench.config import load_config
from workbench.sinks import make_sink

from .conftest import IDENTIFY_AND_TRIGGER, LEADS, config_with, email_of, export_rows, read_csv, rows, scalar


def knock_config(tmp_path, fake, mappings=None, **sink):
    changes = {"mappings": mappings} if mappings is not None else {}
    return config_with(
        tmp_path,
        sink={
            "type": "knock",
            "api_key": {"$env": "KNOCK_API_KEY"},
            "base_url": fake.url,
            "rate_limit_scale": SINK_RATE_SCALE,
            **sink,
        },
        **changes,
    )


def backfill(store, config, fake, **options):
    cfg = load_config(config)
    sink = make_sink(cfg.environment("development").sink, store, {"KNOCK_API_KEY": API_KEY})
    failures = options.pop("failures", None)
    return Backfill(cfg, "development", store, sink, **options).run(
        CsvRows(LEADS), failures=failures, progress=False
    )


@pytest.fixture
def bulk_knock(fake_knock):  # noqa: F811
    return fake_knock


def test_users_go_to_knock_in_bulk_and_a_rerun_sends_nothing(store, tmp_path, bulk_knock):
    source = export_rows(LEADS)
    emails = {email_of(r) for r in source if email_of(r)}
    summary = backfill(store, knock_config(tmp_path, bulk_knock), bulk_knock, batch_size=80)
    assert summary.counts["applied"] == len([r for r in source if email_of(r)])
    calls = bulk_knock.requests_to("/v1/users/bulk/identify", "POST")
    assert len(calls) == 3  # 200 rows in batches of 80
    assert bulk_knock.requests_to("/v1/users/", "PUT") == []
    assert set(bulk_knock.state.users) == emails
    jane = next(r for r in source if email_of(r))
    sent = bulk_knock.state.users[email_of(jane)]
    assert sent["name"] == jane["Full Name"] and sent["company_domain"] == jane["Company Domain"]
    results = [json.loads(r) for (r,) in rows(store, "SELECT result FROM actions WHERE status = 'success'")]
    assert all(r["bulk_operation_id"] for r in results)
    again = backfill(store, knock_config(tmp_path, bulk_knock), bulk_knock, batch_size=80)
    assert again.counts["unchanged"] == summary.counts["applied"]
    assert len(bulk_knock.requests_to("/v1/users/bulk/identify", "POST")) == 3


def test_a_429_is_waited_out_and_the_call_repeated(store, tmp_path, bulk_knock):
    bulk_knock.fail(429, times=2, retry_after="0.05", path="/v1/users/bulk")
    summary = backfill(store, knock_config(tmp_path, bulk_knock), bulk_knock)
    assert summary.counts["queued"] == 0 and summary.counts["applied"] > 0
    statuses = [r.status for r in bulk_knock.requests_to("/v1/users/bulk/identify")]
    assert statuses == [429, 429, 200]


def test_what_bulk_cannot_send_is_queued_for_the_retry_worker(store, tmp_path, bulk_knock):
    bulk_knock.fail(503, times=1, path="/v1/users/bulk")
    summary = backfill(store, knock_config(tmp_path, bulk_knock), bulk_knock)
    with_email = [r for r in export_rows(LEADS) if email_of(r)]
    assert (summary.counts["applied"], summary.counts["queued"]) == (0, len(with_email))
    queued = rows(
        store, "SELECT status, error, next_attempt_at IS NOT NULL FROM actions WHERE status = 'queued'"
    )
    assert len(queued) == summary.counts["queued"] > 0
    assert all("503" in error and due for _, error, due in queued)
    # A queued action is not applied yet: a re-run sends it again (an identify is an upsert, and
    # the retry worker's later attempt finds it applied).
    again = backfill(store, knock_config(tmp_path, bulk_knock), bulk_knock)
    assert again.counts["applied"] == summary.counts["queued"]
    assert backfill(store, knock_config(tmp_path, bulk_knock), bulk_knock).counts["unchanged"] == len(
        with_email
    )


def test_a_refused_bulk_call_fails_its_rows_with_knocks_answer(store, tmp_path, bulk_knock):
    bulk_knock.fail(422, times=1, path="/v1/users/bulk", body={"message": "users[3].email is invalid"})
    failures = tmp_path / "failed.csv"
    summary = backfill(store, knock_config(tmp_path, bulk_knock), bulk_knock, failures=failures)
    assert summary.counts["applied"] == 0
    reasons = {r["_reason"] for r in read_csv(failures)}
    assert "users_identify: Knock answered 422 to a bulk identify: users[3].email is invalid" in reasons


def test_other_actions_go_one_by_one_after_the_users(store, tmp_path, bulk_knock):
    config = knock_config(tmp_path, bulk_knock)
    data = json.loads(config.read_text())
    data["environments"]["development"]["mappings"] = IDENTIFY_AND_TRIGGER
    config.write_text(json.dumps(data))
    backfill(store, config, bulk_knock, batch_size=50)
    paths = [r.path for r in bulk_knock.calls()]
    triggers = [p for p in paths if p.startswith("/v1/workflows/")]
    high = [r for r in export_rows(LEADS) if email_of(r) and int(r["ICP Score"]) >= 80]
    assert len(triggers) == len(high) == len(bulk_knock.runs())
    # Each trigger's recipient was identified before it (a flush precedes it).
    first_trigger = paths.index(triggers[0])
    assert "/v1/users/bulk/identify" in paths[:first_trigger]


def test_without_bulk_users_are_identified_one_by_one_at_the_configured_pace(store, tmp_path, fake_knock):  # noqa: F811
    config = knock_config(tmp_path, fake_knock, rate_per_second=1000)
    result = CliRunner(env={"KNOCK_API_KEY": API_KEY}).invoke(
        main,
        [
            "backfill",
            str(config),
            str(LEADS),
            "--env",
            "development",
            "--store",
            store.url,
            "--no-bulk",
            "--limit",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(fake_knock.requests_to("/v1/users/", "PUT")) == summary["applied"] > 0


def test_bulk_splits_at_knocks_limit(bulk_knock):
    from workbench.engine import ActionRequest
    from workbench.sinks.knock import KnockSink

    sink = BulkKnock(KnockSink(API_KEY, base_url=bulk_knock.url, rate_limit_scale=SINK_RATE_SCALE), chunk=3)
    for i in range(7):
        sink.apply(
            ActionRequest("users_identify", {"id": f"u{i}", "name": f"U{i}"}, f"evt_{i}", "0:users_identify")
        )
    assert sink.flush() == {}
    assert [len(r.json["users"]) for r in bulk_knock.requests_to("/v1/users/bulk/identify")] == [3, 3, 1]
    assert bulk_knock.state.users["u6"] == {"name": "U6"}


def test_a_batch_sent_but_never_logged_triggers_nothing_twice_on_the_rerun(store, tmp_path, bulk_knock):
    """A backfill stopped after Knock got a batch's calls but before the batch was logged sends
    that batch again on the re-run, under new event ids; the triggers' idempotency keys come from
    the rows themselves, so Knock runs each workflow once."""
    from sqlalchemy import event

    config = knock_config(tmp_path, bulk_knock, IDENTIFY_AND_TRIGGER)
    logged = []

    def stop_before_the_second_batch_is_logged(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            logged.append(statement)
            if len(logged) == 2:  # the second batch reached Knock; stop before it is logged
                raise KeyboardInterrupt

    event.listen(store.engine, "before_cursor_execute", stop_before_the_second_batch_is_logged)
    first = backfill(store, config, bulk_knock, batch_size=50)
    event.remove(store.engine, "before_cursor_execute", stop_before_the_second_batch_is_logged)
    assert first.interrupted
    second = backfill(store, config, bulk_knock, batch_size=50)
    assert not second.interrupted and second.counts["unchanged"] > 0
    high = [r for r in export_rows(LEADS) if email_of(r) and int(r["ICP Score"]) >= 80]
    triggers = bulk_knock.requests_to("/v1/workflows/")
    assert len(triggers) > len(high)  # the second batch's triggers were sent twice…
    assert len(bulk_knock.runs()) == len(high)  # …and ran once
    with_email = [r for r in export_rows(LEADS) if email_of(r)]
    assert scalar(store, "SELECT count(*) FROM events WHERE status = 'processed'") == len(with_email)


def test_a_queued_trigger_of_a_backfilled_row_is_retried_under_its_first_key(store, tmp_path, bulk_knock):
    from workbench.config import ConfigSet
    from workbench.service import SourceService

    config = knock_config(tmp_path, bulk_knock, IDENTIFY_AND_TRIGGER)
    bulk_knock.fail(500, times=1, path="/v1/workflows/")
    summary = backfill(store, config, bulk_knock, batch_size=50)
    assert summary.counts["queued"] == 1
    (event_id,) = rows(store, "SELECT event_id FROM actions WHERE status = 'queued'")[0]
    service = SourceService(ConfigSet([config]), store, environ={"KNOCK_API_KEY": API_KEY})
    assert service.replay(event_id)["status"] == "processed"
    attempts = [r for r in bulk_knock.requests_to("/v1/workflows/") if r.status == 500]
    (failed,) = attempts
    again = [
        r for r in bulk_knock.requests_to("/v1/workflows/") if r.idempotency_key == failed.idempotency_key
    ]
    assert [r.status for r in again] == [500, 200]
    assert failed.idempotency_key.startswith("row_")


def test_a_rerun_after_knock_refused_the_triggers_sends_the_fixed_ones_under_new_keys(
    store, tmp_path, bulk_knock
):
    """Knock refused every trigger of the first run (a key it has seen is answered the same way for
    24 h, and refused with other parameters); after the mapping is fixed, the re-run's changed
    triggers go under keys of their own and run once each."""
    config = knock_config(tmp_path, bulk_knock, IDENTIFY_AND_TRIGGER)
    high = [r for r in export_rows(LEADS) if email_of(r) and int(r["ICP Score"]) >= 80]
    bulk_knock.fail(422, times=len(high), path="/v1/workflows/", body={"message": "workflow not committed"})
    first = backfill(store, config, bulk_knock, batch_size=50)
    assert first.counts["failed"] >= len(high) and bulk_knock.runs() == []
    data = json.loads(config.read_text())
    data["environments"]["development"]["mappings"][1]["params"]["actor"] = "body.email"
    config.write_text(json.dumps(data))
    second = backfill(store, config, bulk_knock, batch_size=50)
    assert second.counts["failed"] == first.counts["failed"] - len(high)
    runs = bulk_knock.runs()
    assert sorted(r["actor"] for r in runs) == sorted(email_of(r) for r in high)
    keys = [r.idempotency_key for r in bulk_knock.requests_to("/v1/workflows/")]
    assert len(set(keys)) == len(keys) == 2 * len(high)
    logged = rows(store, "SELECT status, error FROM actions WHERE action = 'workflows_trigger'")
    assert len([s for s, e in logged if s == "success"]) == len(high)
    assert len([s for s, e in logged if s == "failed" and "not committed" in e]) == len(high)


# lead.enriched identifies the lead and sets its company as an object.
IDENTIFY_AND_COMPANY = [
    IDENTIFY_AND_TRIGGER[0],
    {
        "event": "lead.enriched",
        "action": "objects_set",
        "params": {
            "collection": {"value": "companies"},
            "id": "body.company_domain",
            "name": "body.company_name",
            "properties": "body",
        },
    },
]


def test_objects_go_to_knock_in_bulk_too_and_a_rerun_sends_nothing(store, tmp_path, bulk_knock):
    source = export_rows(LEADS)
    summary = backfill(
        store, knock_config(tmp_path, bulk_knock, IDENTIFY_AND_COMPANY), bulk_knock, batch_size=80
    )
    assert summary.counts["applied"] == len([r for r in source if email_of(r)])
    sets = bulk_knock.requests_to("/v1/objects/companies/bulk/set", "POST")
    assert len(sets) == 3  # 200 rows in batches of 80, one call a batch
    assert bulk_knock.requests_to("/v1/objects/", "PUT") == []
    # Users go first in each batch, as Knock runs identify before set object.
    calls = [r.path for r in bulk_knock.calls() if "/bulk/" in r.path]
    assert calls == ["/v1/users/bulk/identify", "/v1/objects/companies/bulk/set"] * 3
    last = {}
    for row in source:
        if email_of(row):
            last[row["Company Domain"]] = row
    assert set(bulk_knock.state.objects) == {("companies", domain) for domain in last}
    wayne = bulk_knock.state.objects[("companies", "wayne.co")]
    assert (wayne["name"], wayne["email"]) == ("Wayne Enterprises", email_of(last["wayne.co"]))
    results = dict(
        rows(store, "SELECT mapping, result FROM actions WHERE action = 'objects_set' AND status = 'success'")
    )
    assert json.loads(results["1:objects_set"])["bulk_operation_id"]
    again = backfill(
        store, knock_config(tmp_path, bulk_knock, IDENTIFY_AND_COMPANY), bulk_knock, batch_size=80
    )
    assert again.counts["unchanged"] == summary.counts["applied"]
    # The rows that failed (no email to identify the lead by) fail again; their companies were
    # set, and are not sent again.
    assert bulk_knock.requests_to("/v1/objects/companies/bulk/set")[3:] == []
    assert again.counts["failed"] == len(source) - summary.counts["applied"]


def test_objects_knock_will_not_take_are_queued_or_failed_and_users_still_go(store, tmp_path, bulk_knock):
    bulk_knock.fail(503, times=1, path="/v1/objects/companies/bulk")
    bulk_knock.fail(422, times=1, path="/v1/objects/companies/bulk", body={"message": "bad object"})
    failures = tmp_path / "failures.csv"
    summary = backfill(
        store,
        knock_config(tmp_path, bulk_knock, IDENTIFY_AND_COMPANY),
        bulk_knock,
        batch_size=80,
        failures=failures,
    )
    statuses = dict(
        rows(store, "SELECT status, count(*) FROM actions WHERE action = 'objects_set' GROUP BY status")
    )
    source = export_rows(LEADS)
    first, second = (sum(1 for r in source[a : a + 80] if r["Company Domain"]) for a in (0, 80))
    assert statuses["queued"] == first and statuses["failed"] >= second
    # A row whose lead has no email failed its identify already: failed, not queued.
    assert summary.counts["queued"] == len([r for r in export_rows(LEADS)[:first] if email_of(r)])
    assert len(bulk_knock.state.users) == len({email_of(r) for r in export_rows(LEADS) if email_of(r)})
    reasons = [r["_reason"] for r in read_csv(failures)]
    assert (
        sum("Knock answered 422 to a bulk set of `companies` objects: bad object" in r for r in reasons)
        == second
    )


def test_bulk_sends_users_then_each_collection_split_at_the_limit(bulk_knock):
    from workbench.engine import ActionRequest
    from workbench.sinks.knock import KnockSink

    sink = BulkKnock(KnockSink(API_KEY, base_url=bulk_knock.url, rate_limit_scale=SINK_RATE_SCALE), chunk=3)
    for i in range(4):
        for collection in ("accounts", "teams"):
            payload = {"collection": collection, "id": f"o{i}", "name": f"O{i}", "properties": {"tier": i}}
            sink.apply(ActionRequest("objects_set", payload, f"evt_{i}", f"1:{collection}"))
        sink.apply(ActionRequest("users_identify", {"id": f"u{i}"}, f"evt_{i}", "0:users_identify"))
    assert sink.flush() == {}
    sent = [(r.path, len(r.json.get("objects") or r.json.get("users"))) for r in bulk_knock.calls()]
    assert max(n for _, n in sent) == 3  # no call holds more than the limit
    totals = {}
    for path, n in sent:
        totals[path] = totals.get(path, 0) + n
    assert totals == {
        "/v1/users/bulk/identify": 4,
        "/v1/objects/accounts/bulk/set": 4,
        "/v1/objects/teams/bulk/set": 4,
    }
    assert sent[0][0] == "/v1/users/bulk/identify"  # each flush sends users first
    assert bulk_knock.state.objects[("teams", "o3")] == {"name": "O3", "tier": 3}


# An off-boarding export: each row deletes its lead and the company's object, and sets the
# company up as a tenant.
OFFBOARD = [
    {"event": "lead.enriched", "action": "users_delete", "params": {"id": "body.email"}},
    {
        "event": "lead.enriched",
        "action": "objects_delete",
        "params": {"collection": {"value": "companies"}, "id": "body.company_domain"},
    },
    {
        "event": "lead.enriched",
        "action": "tenants_set",
        "params": {
            "id": "body.company_domain",
            "name": "body.company_name",
            "properties": {"value": {"tier": 1}},
        },
    },
]


def test_deletes_and_tenants_go_in_bulk_too_and_a_rerun_sends_nothing(store, tmp_path, bulk_knock):
    source = [r for r in export_rows(LEADS) if email_of(r)]
    emails = {email_of(r) for r in source}
    domains = {r["Company Domain"] for r in source}
    bulk_knock.state.users.update({email: {"name": "old"} for email in emails} | {"keep@x.io": {}})
    bulk_knock.state.objects.update({("companies", d): {} for d in domains} | {("companies", "keep.io"): {}})
    config = knock_config(tmp_path, bulk_knock, OFFBOARD)
    summary = backfill(store, config, bulk_knock, batch_size=80)
    assert summary.counts["applied"] == len(source)
    calls = [(r.path, r.status) for r in bulk_knock.calls()]
    # One call of each a batch, in Knock's execution order; nothing one at a time.
    assert (
        calls
        == [
            ("/v1/users/bulk/delete", 200),
            ("/v1/objects/companies/bulk/delete", 200),
            ("/v1/tenants/bulk/set", 200),
        ]
        * 3
    )
    assert set(bulk_knock.state.users) == {"keep@x.io"}
    assert set(bulk_knock.state.objects) == {("companies", "keep.io")}
    assert set(bulk_knock.state.tenants) == domains
    wayne = next(r for r in source if r["Company Domain"] == "wayne.co")
    assert bulk_knock.state.tenants["wayne.co"] == {"name": wayne["Company Name"], "tier": 1}
    results = {}
    for action, result in rows(store, "SELECT action, result FROM actions WHERE status = 'success'"):
        results.setdefault(action, json.loads(result))
    assert results["users_delete"] == {
        "id": email_of(source[0]),
        "deleted": True,
        **_op(results["users_delete"]),
    }
    assert results["objects_delete"]["deleted"] and results["objects_delete"]["collection"] == "companies"
    assert results["tenants_set"]["bulk_operation_id"]
    again = backfill(store, config, bulk_knock, batch_size=80)
    assert again.counts["unchanged"] == len(source)
    # The rows without an email fail again (no user id to delete); their object deletes and
    # tenants were applied, and are not sent again.
    assert bulk_knock.calls()[9:] == []
    assert again.counts["failed"] == summary.counts["failed"] > 0


def _op(result):
    return {"bulk_operation_id": result["bulk_operation_id"]}


def _request(action, payload, n):
    from workbench.engine import ActionRequest

    return ActionRequest(action, payload, f"evt_{n}", f"0:{action}")


def _sent(fake):
    """Each bulk call as (path, the ids it names, in order)."""
    sent = []
    for r in fake.calls():
        body = r.json or {}
        entries = body.get("users") or body.get("tenants") or body.get("user_ids") or []
        entries = entries or body.get("subscriptions") or body.get("objects") or body.get("object_ids") or []
        sent.append((r.path.removeprefix("/v1/"), [e if isinstance(e, str) else e["id"] for e in entries]))
    return sent


def test_an_add_after_a_removal_of_the_same_thing_is_sent_after_it(bulk_knock):
    from workbench.sinks.knock import KnockSink

    sink = BulkKnock(KnockSink(API_KEY, base_url=bulk_knock.url, rate_limit_scale=SINK_RATE_SCALE))
    bulk_knock.state.users["u2"] = {"name": "Two"}
    steps = [
        ("users_identify", {"id": "u1", "name": "One"}),
        ("users_delete", {"id": "u2"}),
        ("users_delete", {"id": "u1"}),  # after u1's identify, as the execution order sends it
        ("users_identify", {"id": "u1", "name": "One again"}),  # after the delete: a flush first
        ("users_identify", {"id": "u3"}),
        ("tenants_set", {"id": "t1", "name": "T"}),
        ("tenants_delete", {"id": "t1"}),  # in order too
    ]
    for n, (action, payload) in enumerate(steps):
        sink.apply(_request(action, payload, n))
    assert sink.flush() == {}
    assert _sent(bulk_knock) == [
        ("users/bulk/identify", ["u1"]),
        ("users/bulk/delete", ["u2", "u1"]),
        ("users/bulk/identify", ["u1", "u3"]),
        ("tenants/bulk/set", ["t1"]),
        ("tenants/bulk/delete", []),  # its ids are in the query string
    ]
    assert bulk_knock.state.users == {"u1": {"name": "One again"}, "u3": {}}
    assert bulk_knock.state.tenants == {}


def test_subscriptions_go_in_bulk_after_what_they_subscribe_to(bulk_knock):
    from workbench.sinks.knock import KnockSink

    sink = BulkKnock(KnockSink(API_KEY, base_url=bulk_knock.url, rate_limit_scale=SINK_RATE_SCALE))
    many = [f"u{i}" for i in range(150)]
    steps = [
        # Each lead's row: identify the lead, set its company, subscribe the lead to the company.
        ("users_identify", {"id": "u1"}),
        ("objects_set", {"collection": "accounts", "id": "acme", "name": "Acme"}),
        ("objects_subscribe", {"collection": "accounts", "id": "acme", "recipients": ["u1"]}),
        ("users_identify", {"id": "u2"}),
        ("objects_set", {"collection": "accounts", "id": "acme", "name": "Acme Inc"}),  # no flush
        ("objects_subscribe", {"collection": "accounts", "id": "acme", "recipients": ["u2"]}),
        ("objects_subscribe", {"collection": "accounts", "id": "globex", "recipients": many}),
    ]
    for n, (action, payload) in enumerate(steps):
        sink.apply(_request(action, payload, n))
    assert sink.flush() == {}
    assert _sent(bulk_knock) == [
        ("users/bulk/identify", ["u1", "u2"]),
        ("objects/accounts/bulk/set", ["acme"]),  # one entry a thing: merged, the later name wins
        # 100 recipients an entry: globex's 150 take two.
        ("objects/accounts/bulk/subscriptions/add", ["acme", "acme", "globex", "globex"]),
    ]
    assert {s for s in bulk_knock.state.subscriptions if s[1] == "acme"} == {
        ("accounts", "acme", "u1"),
        ("accounts", "acme", "u2"),
    }
    assert len([s for s in bulk_knock.state.subscriptions if s[1] == "globex"]) == 150
    # Unsubscribing, then deleting the object: in order, one flush. Subscribing again after
    # the unsubscription, or to the deleted object, is sent after them.
    bulk_knock.state.requests.clear()
    steps = [
        ("objects_unsubscribe", {"collection": "accounts", "id": "acme", "recipients": ["u1"]}),
        ("objects_subscribe", {"collection": "accounts", "id": "acme", "recipients": ["u1"]}),
        ("objects_delete", {"collection": "accounts", "id": "globex"}),
        ("objects_subscribe", {"collection": "accounts", "id": "globex", "recipients": ["u9"]}),
    ]
    for n, (action, payload) in enumerate(steps):
        sink.apply(_request(action, payload, n))
    results = [r for r in sink.flush().values()]
    assert results == []
    assert _sent(bulk_knock) == [
        ("objects/accounts/bulk/subscriptions/delete", ["acme"]),
        ("objects/accounts/bulk/delete", ["globex"]),
        ("objects/accounts/bulk/subscriptions/add", ["acme", "globex"]),
    ]
    assert ("accounts", "acme", "u1") in bulk_knock.state.subscriptions
    assert ("accounts", "globex", "u9") in bulk_knock.state.subscriptions


def test_a_removal_after_an_add_that_ranks_later_is_sent_after_it(bulk_knock):
    from workbench.sinks.knock import KnockSink

    sink = BulkKnock(KnockSink(API_KEY, base_url=bulk_knock.url, rate_limit_scale=SINK_RATE_SCALE))
    sink.apply(_request("objects_subscribe", {"collection": "c", "id": "o1", "recipients": ["u1"]}, 0))
    sink.apply(_request("objects_delete", {"collection": "c", "id": "o1"}, 1))  # ranks before: flush
    sink.apply(_request("users_delete", {"id": "u1"}, 2))  # u1 was subscribed: after the flush
    assert sink.flush() == {}
    assert _sent(bulk_knock) == [
        ("objects/c/bulk/subscriptions/add", ["o1"]),
        ("users/bulk/delete", ["u1"]),
        ("objects/c/bulk/delete", ["o1"]),
    ]


def test_tenant_deletes_go_a_hundred_a_call_and_failures_are_settled(bulk_knock):
    from workbench.sinks.knock import KnockSink

    bulk_knock.state.tenants.update({f"t{i}": {} for i in range(250)})
    bulk_knock.fail(422, times=1, path="/v1/tenants/bulk/delete", body={"message": "bad tenant"})
    sink = BulkKnock(KnockSink(API_KEY, base_url=bulk_knock.url, rate_limit_scale=SINK_RATE_SCALE))
    for i in range(250):
        sink.apply(_request("tenants_delete", {"id": f"t{i}"}, i))
    settled = sink.flush()
    calls = bulk_knock.requests_to("/v1/tenants/bulk/delete")
    assert [r.status for r in calls] == [422, 200, 200]
    assert set(bulk_knock.state.tenants) == {f"t{i}" for i in range(100)}  # the refused hundred
    assert set(settled) == {(f"evt_{i}", "0:tenants_delete") for i in range(100)}
    fate = settled[("evt_0", "0:tenants_delete")]
    assert (fate.status, fate.error) == (
        "failed",
        "Knock answered 422 to a bulk delete of tenants: bad tenant",
    )


def test_rows_knock_fails_in_a_bulk_operation_are_failed_and_a_rerun_retries_only_them(
    store, tmp_path, bulk_knock
):
    """Knock accepts a bulk call and later fails some of its entries: exactly those rows are
    reported failed (summary, log, --failures), with Knock's reason, and a re-run sends only them."""
    with_email = [r for r in export_rows(LEADS) if email_of(r)]
    bad = {email_of(with_email[3]), email_of(with_email[150])}
    bulk_knock.fail_bulk_items(*bad, message="email domain is blocked")
    failures = tmp_path / "failed.csv"
    config = knock_config(tmp_path, bulk_knock)
    summary = backfill(store, config, bulk_knock, batch_size=80, failures=failures)
    bad_rows = [r for r in with_email if email_of(r) in bad]
    assert summary.counts["applied"] == len(with_email) - len(bad_rows)
    assert set(bulk_knock.state.users) == {email_of(r) for r in with_email} - bad  # none applied unseen
    reasons = [
        r["_reason"] for r in read_csv(failures) if r["_status"] == "failed" and "Knock" in r["_reason"]
    ]
    assert len(reasons) == len(bad_rows)
    assert all(
        "Knock did not apply a bulk identify to `" in r and "email domain is blocked" in r for r in reasons
    )
    logged = rows(
        store, "SELECT error FROM actions WHERE status = 'failed' AND error LIKE '%bulk operation%'"
    )
    assert {re.search(r"to `([^`]+)`", e).group(1) for (e,) in logged} == bad
    bulk_knock.bulk.failing.clear()
    again = backfill(store, config, bulk_knock, batch_size=80)
    assert again.counts["applied"] == len(bad_rows)
    assert again.counts["unchanged"] == summary.counts["applied"]
    resent = [u["id"] for r in bulk_knock.requests_to("/v1/users/bulk/identify")[3:] for u in r.json["users"]]
    assert set(resent) == bad and set(bulk_knock.state.users) == {email_of(r) for r in with_email}


def test_a_trigger_goes_only_after_its_users_bulk_operation_completed(store, tmp_path, bulk_knock):
    """The trigger's actor must exist in Knock (else `actor_missing`): it is sent after the bulk
    operation that identifies it completed, not merely after the bulk call."""
    mappings = json.loads(json.dumps(IDENTIFY_AND_TRIGGER))
    mappings[1]["params"]["actor"] = "body.email"
    summary = backfill(store, knock_config(tmp_path, bulk_knock, mappings), bulk_knock, batch_size=50)
    high = [r for r in export_rows(LEADS) if email_of(r) and int(r["ICP Score"]) >= 80]
    runs = bulk_knock.runs()
    assert len(runs) == len(high) and all(run["recipient_known"] for run in runs)
    assert summary.counts["failed"] == len([r for r in export_rows(LEADS) if not email_of(r)])
    paths = [r.path for r in bulk_knock.state.requests]
    first_trigger = next(i for i, p in enumerate(paths) if p.startswith("/v1/workflows/"))
    assert any(p.startswith("/v1/bulk_operations/") for p in paths[:first_trigger])
    results = [
        json.loads(r)
        for (r,) in rows(
            store, "SELECT result FROM actions WHERE action = 'workflows_trigger' AND status = 'success'"
        )
    ]
    assert len(results) == len(high) and all(r["workflow_run_id"] for r in results)


def test_entities_knock_skipped_for_its_batch_limit_are_sent_again(bulk_knock):
    from workbench.sinks.knock import KnockSink

    bulk_knock.skip_bulk_once("u2")
    sink = BulkKnock(KnockSink(API_KEY, base_url=bulk_knock.url, rate_limit_scale=SINK_RATE_SCALE))
    for i in range(4):
        sink.apply(_request("users_identify", {"id": f"u{i}", "name": f"U{i}"}, i))
    assert sink.flush() == {}
    assert _sent(bulk_knock) == [
        ("users/bulk/identify", ["u0", "u1", "u2", "u3"]),
        ("users/bulk/identify", ["u2"]),
    ]
    assert bulk_knock.state.users["u2"] == {"name": "U2"}
    # Skipped again and again: queued for the retry worker, never reported applied.
    bulk_knock.skip_bulk_once("u9")
    sink = BulkKnock(KnockSink(API_KEY, base_url=bulk_knock.url, rate_limit_scale=SINK_RATE_SCALE))
    sink.apply(_request("users_identify", {"id": "u9"}, 9))
    for _ in range(4):
        bulk_knock.skip_bulk_once("u9")
    fate = sink.flush()[("evt_9", "0:users_identify")]
    assert fate.status == "queued" and "limit of one update an entity a second" in fate.error
    assert "u9" not in bulk_knock.state.users


def test_an_operation_knock_does_not_complete_in_time_leaves_its_rows_queued():
    from tests.fakes.knock import FakeKnock
    from workbench.sinks.knock import KnockSink

    fake = FakeKnock(speed=TEST_SPEED, bulk_seconds=10_000)  # it never completes here
    try:
        sink = BulkKnock(
            KnockSink(API_KEY, base_url=fake.url, rate_limit_scale=SINK_RATE_SCALE), operation_deadline=0.3
        )
        for i in range(2):
            sink.apply(_request("users_identify", {"id": f"u{i}"}, i))
        settled = sink.flush()
        assert set(settled) == {("evt_0", "0:users_identify"), ("evt_1", "0:users_identify")}
        fate = settled[("evt_0", "0:users_identify")]
        assert fate.status == "queued" and "had not completed a bulk identify" in fate.error
        assert fake.state.users == {} and len(fake.requests_to("/v1/bulk_operations/")) >= 1
    finally:
        fake.stop()


def test_an_id_that_cannot_name_anything_fails_its_action_and_the_batch_says_what_it_waits_for(bulk_knock):
    from workbench.errors import TerminalSinkError
    from workbench.sinks.knock import KnockSink

    notes: list[str] = []
    sink = BulkKnock(
        KnockSink(API_KEY, base_url=bulk_knock.url, rate_limit_scale=SINK_RATE_SCALE), note=notes.append
    )
    with pytest.raises(TerminalSinkError, match="param `id` is `..`, which cannot name anything"):
        sink.apply(_request("users_identify", {"id": ".."}, 0))
    with pytest.raises(TerminalSinkError, match="param `collection` is `.`"):
        sink.apply(_request("objects_set", {"collection": ".", "id": "acme"}, 1))
    sink.apply(_request("users_identify", {"id": "u1"}, 2))
    assert sink.flush() == {}
    assert "waiting on Knock: 1 bulk operation(s)" in notes and notes[-1] == ""
    assert _sent(bulk_knock) == [("users/bulk/identify", ["u1"])]

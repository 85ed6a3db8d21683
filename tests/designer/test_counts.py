"""Whole-table counts agree with the engine run row by row, whatever the cells and the mapping."""

import json

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import Engine, SourceEvent, parse_config
from workbench.clay import row_to_body
from workbench.designer import ExportTable, TableEvaluator
from workbench.errors import CoercionError
from workbench.sinks import DryRunSink

COLUMNS = ["A", "B", "C"]
CELLS = [
    "",
    "  ",
    "✅ ann@acme.com",
    "❌ No email found",
    "bob@acme.com",
    "x/y",
    "a#b",
    "42",
    "4.5",
    "n/a",
    "yes",
]
SPECS = [
    "body.a",
    "body.b",
    {"path": "body.c", "as": "number"},
    {"path": "body.a", "as": "integer"},
    {"path": "body.b", "as": "boolean"},
    {"template": "u-{{body.a}}-{{body.c}}"},
    {"first": ["body.a", "body.b"]},
    {"value": "fixed"},
    "body.missing",
    "headers.x-id",
]
CONDITIONS = [
    [],
    [{"path": "body.c", "as": "number", "gte": 10}],
    [{"path": "body.b", "exists": True}],
    [{"path": "body.a", "matches": "@acme"}, {"path": "body.c", "ne": "42"}],
]


def config(template, id_spec, name_spec, when, recipients):
    return {
        "source": "clay",
        "environments": {
            "development": {
                "sink": "dry-run",
                "mappings": [
                    {"event": "lead.enriched", "action": "users_identify", "when": when,
                     "params": {"id": id_spec, "name": name_spec, "properties": "body"}},
                    {"event": "lead.enriched", "action": "workflows_trigger",
                     "params": {"key": {"value": "wf"}, "recipients": recipients}},
                ],
            }
        },
        "clay": {"body_template": template},
    }  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.fixed_dictionaries({c: st.sampled_from(CELLS) for c in COLUMNS}), max_size=25),
    c_as=st.sampled_from([None, "number", "string"]),
    id_spec=st.sampled_from(SPECS),
    name_spec=st.sampled_from(SPECS),
    when=st.sampled_from(CONDITIONS),
    recipients=st.sampled_from(SPECS),
)
def test_counts_match_the_engine_row_by_row(rows, c_as, id_spec, name_spec, when, recipients):
    template = {"event": {"value": "lead.enriched"}, "a": "A", "b": "B", "c": {"column": "C", "as": c_as}}
    if c_as is None:
        template["c"] = "C"
    cfg = parse_config(config(template, id_spec, name_spec, when, recipients))
    con = duckdb.connect()
    con.execute('CREATE TABLE t ("A" VARCHAR, "B" VARCHAR, "C" VARCHAR)')
    if rows:
        # Blank cells are NULL, as the export loader stores them.
        con.executemany("INSERT INTO t VALUES (?, ?, ?)", [[r[c] or None for c in COLUMNS] for r in rows])
    counts = TableEvaluator(ExportTable(con, "t"), row_to_body).counts(cfg, "development", "lead.enriched")

    engine = Engine(cfg, "development", DryRunSink())
    expected = {
        m.key: {"failed": 0, "skipped": 0, "success": 0} for m in cfg.environment("development").mappings
    }
    invalid = 0
    for row in rows:
        try:
            body = row_to_body({c: row[c] or None for c in COLUMNS}, template, "lead.enriched")
        except CoercionError:
            invalid += 1
            continue
        for result in engine.process(SourceEvent(json.dumps(body), origin="backfill")).actions:
            expected[result.mapping][result.status] += 1
    for count in counts:
        assert count.invalid_rows == invalid
        got = {"failed": count.failed, "skipped": count.skipped, "success": count.would_run - count.failed}
        assert got == expected[count.mapping], (count.to_dict(), expected[count.mapping])

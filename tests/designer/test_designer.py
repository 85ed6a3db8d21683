"""The designer driven headlessly: set widget values, click buttons, read the state and the files."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench import Engine, SourceEvent, dump_config, load_config
from workbench.clay import row_to_body
from workbench.cli import main
from workbench.designer import MappingDesigner
from workbench.errors import CoercionError
from workbench.paths import is_nothing
from workbench.sinks import DryRunSink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def designer(con):
    return MappingDesigner(con, "leads", config=ROOT / "mappings" / "clay.json")


def body_or_none(row, template, event="lead.enriched"):
    """The row's body, or None when a cell cannot be read as its template type (an invalid row)."""
    try:
        return row_to_body(row, template, event)
    except CoercionError:
        return None


def brute_force(designer, rows):
    """Every row through the engine, one by one: the reference the whole-table counts must match."""
    config = designer.validated()
    engine = Engine(config, designer.environment, DryRunSink())
    tallies = {}
    for row in rows:
        body = body_or_none(row, config.body_template, designer.event)
        if body is None:
            continue
        outcome = engine.process(SourceEvent(json.dumps(body), origin="backfill"))
        for result in outcome.actions:
            tally = tallies.setdefault(result.mapping, {"failed": 0, "skipped": 0, "success": 0})
            tally[result.status] += 1
    return tallies


def assert_counts_match_engine(designer, rows):
    expected = brute_force(designer, rows)
    for count in designer.counts:
        got = {"failed": count.failed, "skipped": count.skipped, "success": count.would_run - count.failed}
        assert got == expected.get(count.mapping, {"failed": 0, "skipped": 0, "success": 0}), count.mapping


def test_preview_shows_sample_rows_through_the_engine(designer, rows):
    assert designer.last_error is None, designer.error_area.value
    assert len(designer.preview) == 20
    first = designer.preview[0]
    assert first.body == row_to_body(rows[0], designer.validated().body_template, "lead.enriched")
    assert [a["action"] for a in first.outcome["actions"]] == ["users_identify"]
    # Row 2 has an email: its payload carries it as the user id.
    second = designer.preview[1].outcome["actions"][0]
    assert second["status"] == "success"
    assert second["payload"]["id"] == "person1@acme1.com"
    assert second["payload"]["properties"]["full_name"] == "Person 1"
    # Row 1 has a blank email: highlighted as a failure naming the param and the path.
    assert designer.preview[0].failed
    assert "param `id`" in first.outcome["actions"][0]["error"]
    assert 'class="wb-row wb-failed"' in designer.preview_html.value


def test_sample_size_is_choosable(designer):
    designer.sample_size.value = 7
    assert len(designer.preview) == 7
    assert designer.preview_html.value.count("<tr data-row=") == 7


def test_failure_counts_cover_the_whole_table(designer, rows):
    template = designer.validated().body_template
    bodies = [body_or_none(r, template) for r in rows]
    no_email = sum(is_nothing(b.get("email")) for b in bodies if b is not None)
    assert no_email >= 8  # the blank cells, at least
    (count,) = designer.counts
    assert count.failed == no_email
    assert count.invalid_rows == 1 and "n/a" in count.invalid_example  # row 14's ICP score
    assert f"{no_email} of {len(rows)} rows have no `id`" in designer.counts_html.value
    assert "they would fail users_identify" in count.messages()[0]
    assert_counts_match_engine(designer, rows)


def test_changing_a_column_changes_preview_and_counts(designer, rows):
    editor = designer.param_editors["id"]
    assert (editor.kind.value, editor.column.value) == ("column", "Work Email")
    editor.column.value = "Company Domain"
    assert designer.last_error is None, designer.error_area.value
    mapping = designer.config["environments"]["development"]["mappings"][0]
    assert mapping["params"]["id"] == "body.company_domain"
    assert designer.preview[1].outcome["actions"][0]["payload"]["id"] == "acme1.com"
    blank_domains = sum(r["Company Domain"] == "" for r in rows)
    assert designer.counts[0].failed == blank_domains
    assert_counts_match_engine(designer, rows)
    # A column that breaks Knock's user-id rule is counted as invalid, with an example.
    editor.column.value = "LinkedIn URL"
    (param,) = [p for p in designer.counts[0].params if p.param == "id"]
    assert param.invalid == len(rows) - 1  # every row but the one that cannot become a body
    assert "`/` or `#`" in param.example
    assert_counts_match_engine(designer, rows)


def test_a_column_not_in_the_template_is_added_to_it(designer):
    designer.param_editors["locale"].kind.value = "column"
    designer.param_editors["locale"].column.value = "Job Title"
    template = designer.validated().body_template
    assert template["job_title"] == "Job Title"
    designer.param_editors["timezone"].kind.value = "column"
    designer.param_editors["timezone"].column.value = "Company Name"
    assert designer.validated().body_template["company_name"] == "Company Name"
    payload = designer.preview[1].outcome["actions"][0]["payload"]
    assert payload["locale"] == "VP Sales" and payload["timezone"] == "Acme 1"


def test_literal_template_and_coercion(designer, rows):
    designer.event_name.value = "account.synced"  # a new event: this mapping is its only one
    template = json.loads(designer.template_text.value)
    template["icp_score"] = "ICP Score"  # the text as exported; the param coerces it
    designer.template_text.value = json.dumps(template)
    designer.add_mapping("objects_set")
    editors = designer.param_editors
    editors["collection"].kind.value = "value"
    editors["collection"].text.value = "companies"
    editors["id"].kind.value = "template"
    editors["id"].text.value = "acct-{{body.company_domain}}"
    editors["properties"].kind.value = "none"
    editors["name"].kind.value = "column"
    editors["name"].column.value = "ICP Score"
    editors["name"].coerce.value = "integer"
    assert designer.last_error is None, designer.error_area.value
    params = designer.config["environments"]["development"]["mappings"][-1]["params"]
    assert params["collection"] == {"value": "companies"}
    assert params["id"] == {"template": "acct-{{body.company_domain}}"}
    assert params["name"] == {"path": "body.icp_score", "as": "integer"}
    result = designer.preview[1].outcome["actions"][0]
    assert result["payload"]["id"] == "acct-acme1.com"
    assert result["payload"]["collection"] == "companies"
    assert result["payload"]["name"] == str((1 * 37) % 100)
    # Row 14 scores "n/a": integer coercion fails there, and the counts say so.
    (name,) = [p for p in designer.counts[-1].params if p.param == "name"]
    assert name.invalid == 1 and "n/a" in name.example
    assert designer.counts[-1].invalid_rows == 0
    assert_counts_match_engine(designer, rows)


def test_several_actions_are_listed_in_execution_order_with_conditions(designer, rows):
    designer.add_mapping("workflows_trigger")
    designer.conditions.path.value = "body.icp_score"
    designer.conditions.op.value = "gte"
    designer.conditions.operand.value = "80"
    designer.conditions.coerce.value = "number"
    designer.conditions.add.click()
    assert designer.last_error is None, designer.error_area.value
    designer.add_mapping("tenants_set")
    labels = [label for label, _ in designer.mapping_list.options]
    assert [label.split(" ")[1] for label in labels] == ["users_identify", "tenants_set", "workflows_trigger"]
    assert "when" in labels[2]
    actions = [a["action"] for a in designer.preview[1].outcome["actions"]]
    assert actions == ["users_identify", "tenants_set", "workflows_trigger"]
    trigger = designer.counts[2]
    high = sum(1 for i, r in enumerate(rows) if i != 13 and int(r["ICP Score"]) >= 80)
    assert trigger.would_run == high and trigger.skipped == len(rows) - 1 - high  # one row is invalid
    assert_counts_match_engine(designer, rows)
    # Removing the selected action takes it out of the list and the preview.
    designer.mapping_list.value = labels_index(designer, "tenants_set")
    designer.remove_button.click()
    assert [c.action for c in designer.counts] == ["users_identify", "workflows_trigger"]


def labels_index(designer, action):
    return next(index for label, index in designer.mapping_list.options if action in label)


def test_idempotency_and_body_template_are_editable(designer):
    designer.idempotency_kind.value = "hash"
    designer.idempotency_path.value = "body"
    env = designer.validated().environment("development")
    assert env.idempotency is not None and env.idempotency.hashed
    template = json.loads(designer.template_text.value)
    template["title"] = "Job Title"
    designer.template_text.value = json.dumps(template)
    assert designer.last_error is None, designer.error_area.value
    assert designer.preview[1].body["title"] == "VP Sales"


def test_callback_errors_are_shown_not_swallowed(designer):
    designer.template_text.value = "{not json"
    assert designer.last_error is not None
    assert "body template is not valid JSON" in designer.error_area.value
    assert "wb-error" in designer.error_area.value
    designer.conditions.text.value = '[{"path": "body.icp_score", "gte": 80'
    assert "conditions are not valid JSON" in designer.error_area.value
    designer.path_text.value = "/nonexistent/dir/config.json"
    designer.load_button.click()
    assert "file not found" in designer.error_area.value


def test_an_invalid_mapping_shows_every_problem(designer):
    designer.param_editors["id"].kind.value = "none"
    assert designer.problems
    assert "requires `id`" in designer.summary.value
    assert designer.preview == [] and designer.counts == []
    designer.param_editors["id"].kind.value = "path"
    designer.param_editors["id"].text.value = "body.email"
    assert designer.problems == [] and len(designer.preview) == 20


def test_save_writes_a_config_the_core_loads_and_rehearse_runs(designer, tmp_path, rows):
    designer.param_editors["id"].column.value = "Company Domain"
    target = tmp_path / "mappings" / "designed.json"
    designer.path_text.value = str(target)
    designer.save_button.click()
    assert designer.last_error is None, designer.error_area.value
    text = target.read_text()
    assert text == dump_config(json.loads(text))  # stable key order
    config = load_config(target)
    assert config.environment("development").mappings_for("lead.enriched")[0].raw["params"]["id"] == (
        "body.company_domain"
    )
    assert "Saved" in designer.message.value
    assert designer.setup_text.value.strip() and designer.setup_text.layout.display == ""
    # `workbench rehearse` accepts the saved file, and answers what the preview showed.
    body = tmp_path / "row.json"
    body.write_text(json.dumps(designer.preview[1].body))
    result = CliRunner().invoke(main, ["rehearse", str(target), "--env", "development", str(body)])
    assert result.exit_code == 0, result.output
    rehearsed = json.loads(result.output)
    assert rehearsed["actions"] == designer.preview[1].outcome["actions"]


def test_load_opens_an_existing_config(con, tmp_path):
    source = tmp_path / "start.json"
    shutil.copy(ROOT / "mappings" / "clay.json", source)
    designer = MappingDesigner(con, "leads")
    assert designer.counts == []  # a fresh config has no mapping yet
    designer.path_text.value = str(source)
    designer.load_button.click()
    assert designer.last_error is None, designer.error_area.value
    assert set(designer.environment_choice.options) == {"development", "production"}
    designer.event_name.value = "lead.high_intent"
    assert [c.action for c in designer.counts] == ["workflows_trigger"]
    designer.environment_choice.value = "production"
    assert designer.environment == "production" and designer.counts


def test_a_fresh_designer_puts_every_column_in_the_template(con, rows):
    designer = MappingDesigner(con, "leads", environment="development")
    template = designer.validated().body_template
    assert {"Work Email", "Full Name"} <= {v for v in template.values() if isinstance(v, str)}
    designer.add_mapping("users_identify")
    assert designer.param_editors["id"].column.value == "Work Email"
    assert len(designer.preview) == 20
    assert_counts_match_engine(designer, rows)


def test_opening_a_config_does_not_make_save_overwrite_it(con, tmp_path):
    shipped = tmp_path / "clay.json"
    shutil.copy(ROOT / "mappings" / "clay.json", shipped)
    before = shipped.read_text()
    target = tmp_path / "designed.json"
    designer = MappingDesigner(con, "leads", config=shipped, save_path=target)
    designer.param_editors["id"].column.value = "Company Domain"
    designer.save_button.click()
    assert designer.last_error is None, designer.error_area.value
    assert shipped.read_text() == before
    assert (
        load_config(target).environment("development").mappings[0].raw["params"]["id"]
        == "body.company_domain"
    )


def test_choosing_another_table(con, tmp_path, rows):
    from workbench.clay import load_export

    from .conftest import write_export

    load_export(write_export(tmp_path / "few.csv", rows[:5]), con, table="few")
    designer = MappingDesigner(con, "leads", config=ROOT / "mappings" / "clay.json")
    assert set(designer.table_choice.options) == {"leads", "few"}
    designer.table_choice.value = "few"
    assert designer.last_error is None, designer.error_area.value
    assert designer.table.rows == 5 and len(designer.preview) == 5
    assert designer.counts[0].rows == 5
    assert_counts_match_engine(designer, rows[:5])


def test_loading_a_config_without_the_current_environment_adds_none(con, tmp_path):
    only_production = json.loads((ROOT / "mappings" / "clay.json").read_text())
    del only_production["environments"]["development"]
    path = tmp_path / "production.json"
    path.write_text(json.dumps(only_production))
    designer = MappingDesigner(con, "leads", config=ROOT / "mappings" / "clay.json")
    designer.load(path)
    assert designer.environment == "production"
    assert list(designer.config["environments"]) == ["production"]


def preview_lines(designer):
    """The preview's rows as shown: (row number, status), top to bottom."""
    import re

    return [
        (int(n), status)
        for n, status in re.findall(
            r'<tr data-row="(\d+)" class="wb-row wb-(\w+)"', designer.preview_html.value
        )
    ]


def test_the_preview_is_a_line_a_row_failures_first_and_filterable(designer):
    lines = preview_lines(designer)
    assert len(lines) == 20
    failed = [n for n, status in lines if status in ("failed", "invalid")]
    assert failed and [n for n, _ in lines[: len(failed)]] == sorted(failed)
    assert [n for n, _ in lines[len(failed) :]] == sorted(n for n, _ in lines[len(failed) :])
    # Each line carries the row's key fields and its reason, and opens to the whole outcome.
    html_text = designer.preview_html.value
    assert "id=person1@acme1.com" in html_text and "<details>" in html_text
    assert "users_identify: param `id`: path `body.email` resolved to nothing" in html_text
    designer.only_failures.value = True
    assert [n for n, _ in preview_lines(designer)] == sorted(failed)


def test_save_is_refused_while_an_error_is_shown_and_writes_nothing(designer, tmp_path):
    target = tmp_path / "designed.json"
    designer.path_text.value = str(target)
    designer.add_mapping("workflows_trigger")
    designer.conditions.text.value = '[{"path": "body.icp_score", "gte": '  # an unfinished condition
    assert "conditions are not valid JSON" in designer.error_area.value
    assert "before the error" in designer.stale_note.value
    designer.save_button.click()
    assert not target.exists()
    assert "Not saved" in designer.save_status.value
    assert "conditions are not valid JSON" in designer.save_status.value
    assert "conditions are not valid JSON" in designer.error_area.value  # the error stays shown
    # Another edit that works does not hide the unfinished condition, nor unblock Save.
    designer.sample_size.value = 10
    assert "conditions are not valid JSON" in designer.error_area.value
    designer.save_button.click()
    assert not target.exists()
    # A condition that parses but is not valid config is refused too.
    designer.conditions.text.value = '[{"path": "body.icp_score"}]'
    designer.save_button.click()
    assert not target.exists() and "problem" in designer.save_status.value
    designer.conditions.text.value = '[{"path": "body.icp_score", "as": "number", "gte": 80}]'
    assert designer.error_area.value == "" and designer.stale_note.value == ""
    designer.save_button.click()
    saved = load_config(target).environment("development").mappings_for("lead.enriched")
    assert [m.raw.get("when") for m in saved if m.raw["action"] == "workflows_trigger"] == [
        [{"path": "body.icp_score", "as": "number", "gte": 80}]
    ]


def test_save_says_when_and_where_it_saved(con, tmp_path):
    from datetime import datetime

    target = tmp_path / "designed.json"
    designer = MappingDesigner(
        con,
        "leads",
        config=ROOT / "mappings" / "clay.json",
        save_path=target,
        clock=lambda: datetime(2026, 5, 4, 13, 14, 15),
    )
    designer.save_button.click()
    assert "Saved at 13:14:15 to" in designer.save_status.value
    assert str(target) in designer.save_status.value and target.exists()
    designer.param_editors["id"].column.value = "Company Domain"
    assert "Changed since saved at 13:14:15" in designer.save_status.value
    designer.save_button.click()
    assert "Saved at" in designer.save_status.value


def test_save_from_code_raises_the_refusal(designer, tmp_path):
    from workbench.errors import SaveRefused

    designer.template_text.value = "{not json"
    with pytest.raises(SaveRefused, match="body template is not valid JSON"):
        designer.save(tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_path_typos_are_checked_with_did_you_mean(designer):
    editor = designer.param_editors["name"]
    editor.kind.value = "path"
    editor.text.value = "body.ful_name"
    assert designer.last_error is None, designer.error_area.value
    (check,) = designer.checks
    assert check.where == "environments.development.mappings[0].params.name"
    assert "Did you mean `body.full_name`?" in check.message
    assert "Did you mean `body.full_name`?" in designer.checks_html.value
    template = json.loads(designer.template_text.value)
    template["title"] = "Job Titel"
    designer.template_text.value = json.dumps(template)
    assert any('Did you mean "Job Title"?' in c.message for c in designer.checks)
    editor.text.value = "body.full_name"
    template["title"] = "Job Title"
    designer.template_text.value = json.dumps(template)
    assert designer.checks == [] and designer.checks_html.value == ""


def test_toolbar_holds_load_and_save_and_panels_can_be_added(designer):
    import ipywidgets as w

    assert designer.widget.children[1] is designer.toolbar
    buttons = [c for box in designer.toolbar.children for c in box.children]
    assert designer.save_button in buttons and designer.load_button in buttons
    assert designer.environment_choice in buttons and designer.event_name in buttons
    panel = w.VBox([w.HTML("Knock")])
    index = designer.add_panel("Knock", panel)
    assert designer.tabs.children[index] is panel and designer.tabs.get_title(index) == "Knock"


def suggestion_rows(designer):
    return {s.field.name: s for s in designer.suggestions}


def test_a_fresh_export_gets_suggestions_to_accept_or_dismiss(con, rows):
    designer = MappingDesigner(con, "leads")
    shown = suggestion_rows(designer)
    assert set(shown) == {"user id", "email", "name", "phone", "avatar URL", "company domain", "ICP score"}
    assert shown["user id"].column == "Work Email" and "filled" in shown["user id"].why
    assert len(designer.suggestion_list.rows.children) == 7
    assert designer.suggestion_list.widget.layout.display == ""
    # Accept one by its button: the mapping appears, and the preview runs it.
    index = designer.suggestions.index(shown["user id"])
    designer.suggestion_list.rows.children[index].children[0].click()
    assert designer.last_error is None, designer.error_area.value
    (mapping,) = designer.config["environments"]["development"]["mappings"]
    assert mapping["params"]["id"] == "body.work_email" and "user id" not in suggestion_rows(designer)
    assert designer.preview[1].outcome["actions"][0]["payload"]["id"] == "person1@acme1.com"
    # Dismiss one: it goes, and stays gone.
    index = designer.suggestions.index(suggestion_rows(designer)["avatar URL"])
    designer.suggestion_list.rows.children[index].children[1].click()
    assert "avatar URL" not in suggestion_rows(designer)
    designer.suggestion_list.accept_all.click()
    assert designer.suggestions == [] and designer.suggestion_list.widget.layout.display == "none"
    params = designer.config["environments"]["development"]["mappings"][0]["params"]
    assert "avatar" not in params and params["phone_number"] == "body.phone_number"
    designer.param_editors["phone_number"].coerce.value = "e164"
    assert designer.preview[0].outcome["actions"][0]["payload"]["phone_number"] == "+14155550000"
    assert_counts_match_engine(designer, rows)
    designer.event_name.value = "lead.high_intent"
    (trigger,) = designer.counts
    assert trigger.action == "workflows_trigger" and trigger.skipped > 0


def test_a_config_that_follows_the_profile_has_little_to_suggest(designer):
    assert [s.field.name for s in designer.suggestions] == ["company domain"]


def test_a_phone_number_as_e164_with_a_region(designer, rows):
    editor = designer.param_editors["phone_number"]
    assert editor.region.layout.display == "none"
    editor.coerce.value = "e164"
    assert editor.region.layout.display == ""
    editor.region.value = "us"
    assert designer.last_error is None, designer.error_area.value
    params = designer.config["environments"]["development"]["mappings"][0]["params"]
    assert params["phone_number"] == {"path": "body.phone_number", "as": "e164", "region": "US"}
    assert designer.preview[0].outcome["actions"][0]["payload"]["phone_number"] == "+14155550000"
    assert_counts_match_engine(designer, rows)
    # Shown again as it was when the mapping is selected anew.
    designer.editing.sync_mapping()
    assert (editor.coerce.value, editor.region.value) == ("e164", "US")


def test_loading_another_config_forgets_the_last_save(designer, tmp_path):
    designer.save(tmp_path / "a.json")
    designer.path_text.value = str(ROOT / "mappings" / "clay.json")
    designer.load_button.click()
    assert "Loaded" in designer.save_status.value
    designer.sample_size.value = 5
    assert "Changed since saved" not in designer.save_status.value

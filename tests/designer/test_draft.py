"""A parameter choice becomes a value spec and is shown again as the same choice."""

import pytest

from workbench.clay import snake_case
from workbench.designer.draft import choice_from_spec, ordered_mappings, parse_literal, spec_from_choice


@pytest.mark.parametrize(
    ("choice", "spec"),
    [
        (("column", "Work Email", None), "body.work_email"),
        (("column", "ICP Score", "number"), {"path": "body.icp_score", "as": "number"}),
        (("path", "body.contacts[0].email", None), "body.contacts[0].email"),
        (("path", "headers.x-clay-table-id", "string"), {"path": "headers.x-clay-table-id", "as": "string"}),
        (("value", '["sales-team"]', None), {"value": ["sales-team"]}),
        (("value", "accounts", None), {"value": "accounts"}),
        (("template", "acct-{{body.company_domain}}", None), {"template": "acct-{{body.company_domain}}"}),
        (
            ("first", "body.email, body.find_work_email", None),
            {"first": ["body.email", "body.find_work_email"]},
        ),
        (("none", "", None), None),
        (("column", "Phone", "e164", "US"), {"path": "body.phone", "as": "e164", "region": "US"}),
        (("path", "body.mobile", "e164"), {"path": "body.mobile", "as": "e164"}),
    ],
)
def test_choice_and_spec_round_trip(choice, spec):
    template = {
        "event": {"value": "lead.enriched"},
        "icp_score": {"column": "ICP Score", "as": "number"},
        "phone": "Phone",
    }
    kind, text, as_, *region = choice
    region = region[0] if region else None
    assert spec_from_choice(kind, text, as_, template, snake_case, region) == spec
    assert choice_from_spec(spec, template) == (kind, text, as_, region)


def test_a_column_with_an_awkward_name_gets_a_quoted_path_when_needed():
    template = {"first name": "First Name"}
    assert choice_from_spec('body["first name"]', template) == ("column", "First Name", None, None)
    assert (
        spec_from_choice("column", "Find Work Email (2)", None, template, snake_case)
        == "body.find_work_email_2"
    )
    assert template["find_work_email_2"] == "Find Work Email (2)"


def test_an_empty_choice_is_not_mapped_but_an_empty_literal_is():
    assert spec_from_choice("path", "  ", None, {}, snake_case) is None
    assert spec_from_choice("value", "", None, {}, snake_case) == {"value": ""}
    assert parse_literal("42") == 42 and parse_literal("text") == "text"


def test_mappings_are_ordered_as_knock_runs_them():
    mappings = [
        {"event": "e", "action": "workflows_trigger"},
        {"event": "other", "action": "users_identify"},
        {"event": "e", "action": "objects_set"},
        {"event": "e", "action": "users_identify"},
        {"event": "e", "action": "objects_set"},
    ]
    assert ordered_mappings(mappings, "e") == [3, 2, 4, 0]

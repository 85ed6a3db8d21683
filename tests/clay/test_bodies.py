import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.clay import clean_cell, row_to_body, snake_case, template_event
from workbench.config import load_config
from workbench.errors import CoercionError
from workbench.paths import MISSING

from .conftest import CONFIG


@pytest.mark.parametrize(
    "column, key",
    [
        ("Work Email", "work_email"),
        ("Find Work Email (2)", "find_work_email_2"),
        ("LinkedIn URL", "linked_in_url"),
        ("ICP Score", "icp_score"),
        ("Chloé's Notes", "chloe_s_notes"),
        ("  Company / Domain  ", "company_domain"),
    ],
)
def test_snake_case(column, key):
    assert snake_case(column) == key


@pytest.mark.parametrize(
    "cell, value",
    [
        ("✅ jane@acme.com", "jane@acme.com"),
        ("✅", MISSING),
        ("❌ No email found", MISSING),
        ("⚠️ Low", "⚠️ Low"),
        ("", MISSING),
        ("   ", MISSING),
        (None, MISSING),
        ("00123", "00123"),
        ("+1 415 555 0100", "+1 415 555 0100"),
    ],
)
def test_clean_cell(cell, value):
    assert clean_cell(cell) == value


def test_template_body():
    template = load_config(CONFIG).body_template
    row = {
        "Work Email": "✅ jane@acme.com",
        "Full Name": "Jane Doe",
        "Phone Number": "",
        "ICP Score": "87",
        "Company Domain": "❌ Not found",
        "Unused": "x",
    }
    assert row_to_body(row, template, "ignored") == {
        "event": "lead.enriched",
        "email": "jane@acme.com",
        "full_name": "Jane Doe",
        "icp_score": 87,
    }
    assert template_event(template) == "lead.enriched"


def test_template_literals_and_coercions():
    template = {
        "source": {"value": {"list": [1, 2]}},
        "enrich": {"column": "Enrich", "as": "json"},
        "score": {"column": "Score", "as": "integer"},
    }
    row = {"Enrich": '{"a": {"b": 1}}', "Score": "12"}
    assert row_to_body(row, template, "lead.enriched") == {
        "source": {"list": [1, 2]},
        "enrich": {"a": {"b": 1}},
        "score": 12,
        "event": "lead.enriched",
    }
    with pytest.raises(CoercionError, match="column `Score` \\(body key `score`\\).*high"):
        row_to_body({"Score": "high"}, template)


def test_default_body_takes_every_non_empty_column():
    row = {
        "Work Email": "jane@acme.com",
        "Find Work Email": "✅ jane@acme.com",
        "Find Work Email (2)": "❌ No email found",
        "Work email": "dup@acme.com",
        "Notes": "",
        "Zip": "00123",
        "_row_number": 3,
        "_source_file": "/x.csv",
    }
    assert row_to_body(row, None, "lead.enriched") == {
        "work_email": "jane@acme.com",
        "find_work_email": "jane@acme.com",
        "work_email_2": "dup@acme.com",
        "zip": "00123",
        "event": "lead.enriched",
    }
    assert row_to_body({"Event": "contact.updated"}, None, "lead.enriched") == {"event": "contact.updated"}


@pytest.mark.parametrize(
    "name",
    ["clay_leads_sample.csv", "clay_bom_crlf.csv", "clay_duplicate_headers.csv", "clay_header_only.csv"],
)
@pytest.mark.parametrize("with_template", [True, False])
def test_compiled_bodies_equal_row_to_body(name, with_template):
    from workbench.clay import ExportReader, body_builder

    from .conftest import SAMPLES

    template = load_config(CONFIG).body_template if with_template else None
    template = (template or {}) | {"zip": "Zip Code", "gone": "No Such Column"} if with_template else None
    with ExportReader(SAMPLES / name) as reader:
        build = body_builder(reader.columns, template, "lead.enriched")
        for _, cells in reader.rows():
            row = dict(zip(reader.columns, cells, strict=True))
            assert build(cells) == row_to_body(row, template, "lead.enriched")


_CELLS = st.none() | st.text(
    alphabet=st.sampled_from(["a", "0", " ", "\t", "\n", "✅", "✔", "️", "☑", "❌", "✖", "⛔", "🚫", "é"]),
    max_size=6,
)


@settings(max_examples=300)
@given(st.lists(_CELLS, min_size=3, max_size=3))
def test_compiled_bodies_clean_any_cell_as_row_to_body(cells):
    from workbench.clay import body_builder

    columns = ["Work Email", "Full Name", "Notes"]
    template = {"email": "Work Email", "full_name": "Full Name", "notes": "Notes"}
    build = body_builder(columns, template, "lead.enriched")
    assert build(cells) == row_to_body(dict(zip(columns, cells, strict=True)), template, "lead.enriched")

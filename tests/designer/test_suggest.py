"""Suggestions from the column profile, measured on exports whose headers are named several ways."""

import duckdb
import pytest

from scripts.make_samples import HEADER_STYLES, write_export
from workbench.clay import load_export, profile, snake_case
from workbench.designer.suggest import FIELDS, apply_suggestion, header_words, in_place, suggest

# The column each field should get, in Clay's own naming (renamed by each header style).
TRUTH = {
    "user id": "Work Email",
    "email": "Work Email",
    "name": "Full Name",
    "phone": "Phone Number",
    "avatar URL": "Profile Picture",
    "company domain": "Company Domain",
    "ICP score": "ICP Score",
}
SEEDS = (3, 7, 11)


@pytest.fixture(scope="module")
def profiles_by_export(tmp_path_factory):
    """(style, seed) -> the column profiles of an export so written."""
    folder = tmp_path_factory.mktemp("exports")
    con = duckdb.connect()
    out = {}
    for style in HEADER_STYLES:
        for seed in SEEDS:
            path = folder / f"{style}-{seed}.csv"
            write_export(path, 60, seed, headers=style)
            table = f"t_{style}_{seed}"
            load_export(path, con, table=table)
            out[style, seed] = profile(con, table)
    con.close()
    return out


def test_accuracy_over_header_styles(profiles_by_export):
    right = total = 0
    misses = []
    for (style, seed), profiles in profiles_by_export.items():
        rename = HEADER_STYLES[style]
        chosen = {s.field.name: s.column for s in suggest(profiles)}
        for field in FIELDS:
            total += 1
            expected = rename(TRUTH[field.name])
            if chosen.get(field.name) == expected:
                right += 1
            else:
                misses.append((style, seed, field.name, chosen.get(field.name), expected))
    share = right / total
    print(f"\nsuggestion accuracy: {right}/{total} = {share:.0%} over {len(HEADER_STYLES)} header styles")
    assert share >= 0.95, misses


@pytest.mark.parametrize(
    ("header", "words"),
    [("Work Email", {"work", "email"}), ("work_email", {"work", "email"}), ("workEmail", {"work", "email"})],
)
def test_header_words_whatever_the_style(header, words):
    assert header_words(header) == words


def test_each_suggestion_says_why(profiles_by_export):
    (email,) = [s for s in suggest(profiles_by_export["clay", 7]) if s.field.name == "user id"]
    assert email.column == "Work Email"
    assert "kind email" in email.why and "% filled" in email.why
    assert "users_identify `id` ← “Work Email”" in email.describe()


def test_no_suggestion_without_evidence():
    from workbench.clay.profiling import ColumnProfile

    notes = ColumnProfile("Notes", 0.2, 3, ("call back", "met at a fair"), "text")
    assert suggest([notes]) == []


def test_applying_suggestions_builds_the_mappings(profiles_by_export):
    config = {"environments": {"development": {"mappings": []}}, "clay": {"body_template": {}}}
    suggestions = suggest(profiles_by_export["crm", 3])
    assert not any(in_place(config, "development", s) for s in suggestions)
    for s in suggestions:
        apply_suggestion(config, "development", s, snake_case)
    assert all(in_place(config, "development", s) for s in suggestions)
    mappings = {(m["event"], m["action"]): m for m in config["environments"]["development"]["mappings"]}
    identify = mappings["lead.enriched", "users_identify"]["params"]
    assert identify["id"] == identify["email"] == "body.email_address"
    assert identify["phone_number"] == "body.mobile"
    assert identify["properties"] == "body"
    assert mappings["account.enriched", "objects_set"]["params"]["id"] == "body.domain"
    assert mappings["lead.high_intent", "workflows_trigger"]["when"] == [
        {"path": "body.lead_score", "as": "number", "gte": 80}
    ]
    assert config["clay"]["body_template"]["email_address"] == "Email Address"

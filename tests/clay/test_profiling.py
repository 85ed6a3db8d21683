import pytest

from workbench.clay import detect_kind, load_export, profile

from .conftest import SAMPLES


def test_profile_of_the_leads_sample(con):
    load_export(SAMPLES / "clay_leads_sample.csv", con)
    profiles = {p.column: p for p in profile(con, "clay_leads_sample")}
    assert "_row_number" not in profiles and len(profiles) == 34
    kinds = {c: p.kind for c, p in profiles.items()}
    assert kinds["Work Email"] == "email"
    assert kinds["Find Work Email"] == "clay_status"
    assert kinds["Phone Number"] == "phone"
    assert kinds["Profile Picture"] == "url"
    assert kinds["ICP Score"] == "number"
    assert kinds["Enrich Company"] == "json_object"
    assert kinds["Zip Code"] == "text"  # leading zeros: not a number
    blank = con.execute("""SELECT count(*) FROM clay_leads_sample WHERE "Work Email" IS NULL""").fetchone()[0]
    assert blank > 0 and profiles["Work Email"].non_empty == pytest.approx(1 - blank / 200)
    assert (
        profiles["Job Title"].distinct
        == con.execute('SELECT count(DISTINCT "Job Title") FROM clay_leads_sample').fetchone()[0]
    )
    assert 1 <= len(profiles["Job Title"].examples) <= 3


def test_profile_of_an_empty_table(con):
    load_export(SAMPLES / "clay_header_only.csv", con)
    assert {p.kind for p in profile(con, "clay_header_only")} == {"empty"}


@pytest.mark.parametrize(
    "values, kind",
    [
        (["jane@acme.com", "x@y.io"], "email"),
        (["87", "3.5", "-2"], "number"),
        (["00123", "02110"], "text"),
        (["+1 415 555 0100", "(415) 555-0199"], "phone"),
        (['{"a": 1}', "{}"], "json_object"),
        (["[1, 2]"], "text"),
        (["✅ jane@acme.com", "❌ No email found"], "clay_status"),
        (["✅ jane@acme.com"] + [f"p{i}@acme.com" for i in range(8)], "email"),  # a few marked found
        (["https://acme.com", "www.globex.io"], "url"),
        ([], "empty"),
    ],
)
def test_detect_kind(values, kind):
    assert detect_kind(values) == kind


def test_a_sparse_column_is_sampled_past_the_first_rows(tmp_path):
    import duckdb

    from workbench.clay import profiling

    path = tmp_path / "sparse.csv"
    rows = ['"Note","Email"'] + [f'"","p{i}@acme.com"' for i in range(1200)] + ['"late note","x@acme.com"']
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    con = duckdb.connect()
    load_export(path, con, table="sparse")
    note, email = profiling.profile(con, "sparse")
    assert note.examples == ("late note",) and note.kind == "text" and note.distinct == 1
    assert email.kind == "email" and email.non_empty == 1.0 and email.distinct == 1201

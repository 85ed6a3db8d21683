import csv
import json

import pytest

from scripts.make_samples import COLUMNS, write_samples
from workbench.clay import ExportError, ExportReader, load_export, table_name_for, unique_columns

from .conftest import SAMPLES


def rows_of(con, table):
    cursor = con.execute(f'SELECT * FROM "{table}" ORDER BY _row_number')
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def expected_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_shipped_samples_are_what_the_script_writes(tmp_path):
    for path in write_samples(tmp_path):
        assert path.read_bytes() == (SAMPLES / path.name).read_bytes(), path.name


def test_leads_sample_has_the_quirks_the_notebooks_rely_on():
    raw = (SAMPLES / "clay_leads_sample.csv").read_bytes().decode("utf-8")
    rows = expected_rows(SAMPLES / "clay_leads_sample.csv")
    assert len(rows) == 200 and list(rows[0]) == COLUMNS
    assert raw.count("\r\n") > 200 and raw.startswith('"Full Name","')
    assert any(r["Work Email"] == "" for r in rows) and any(r["Work Email"].startswith("✅ ") for r in rows)
    assert any(r["Find Work Email"].startswith("❌") for r in rows)
    assert any("\n" in r["Recent News"] and '"' in r["Recent News"] for r in rows)
    assert all(isinstance(json.loads(r["Enrich Company"]), dict) for r in rows)
    assert "Find Work Email (2)" in rows[0] and "Enrich Company (2)" in rows[0]


@pytest.mark.parametrize(
    "name, bom, crlf",
    [
        ("clay_leads_sample.csv", False, True),
        ("clay_bom_crlf.csv", True, True),
        ("clay_lf.csv", False, False),
    ],
)
def test_cells_arrive_verbatim_whatever_the_encoding_details(con, name, bom, crlf):
    path = SAMPLES / name
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") is bom and (b"\r\n" in data) is crlf
    loaded = load_export(path, con)
    assert (loaded.rows, loaded.columns) == (len(expected_rows(path)), 34)
    got = rows_of(con, loaded.table)
    assert list(got[0])[:34] == COLUMNS  # the BOM is not glued to the first header
    for want, row in zip(expected_rows(path), got, strict=True):
        assert {c: row[c] or "" for c in COLUMNS} == want
    assert [r["_row_number"] for r in got] == list(range(1, len(got) + 1))
    assert {r["_source_file"] for r in got} == {str(path.resolve())}
    assert all(r["_loaded_at"] is not None for r in got)
    # Multi-line cells keep their own line ends; the file's CRLF does not leak into them.
    assert any("\n" in (r["Recent News"] or "") for r in got)
    assert not any("\r" in (r["Recent News"] or "") for r in got)


def test_every_cell_is_text(con, tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text(
        '"Zip","Phone","Score","Flag"\n"00123","+1 415 555 0100","087","true"\n', encoding="utf-8"
    )
    load_export(path, con)
    types = {r[0]: r[1] for r in con.execute("DESCRIBE codes").fetchall()}
    assert {types[c] for c in ("Zip", "Phone", "Score", "Flag")} == {"VARCHAR"}
    assert con.execute("SELECT Zip, Phone, Score, Flag FROM codes").fetchone() == (
        "00123",
        "+1 415 555 0100",
        "087",
        "true",
    )


def test_duplicate_headers_get_clay_style_suffixes(con):
    loaded = load_export(SAMPLES / "clay_duplicate_headers.csv", con)
    row = rows_of(con, loaded.table)[0]
    assert (row["Email"], row["Email (2)"]) == ("jane@acme.com", "jane.doe@acme.com")
    assert unique_columns(["A", "A", "A (2)", "", "A"]) == ["A", "A (2)", "A (2) (2)", "Column 4", "A (3)"]
    # DuckDB column names ignore case, so these are repeats too.
    assert unique_columns(["Email", "email", "EMAIL"]) == ["Email", "email (2)", "EMAIL (3)"]


def test_loading_the_same_file_twice_keeps_one_copy(con):
    path = SAMPLES / "clay_bom_crlf.csv"
    load_export(path, con)
    load_export(path, con)
    assert con.execute("SELECT count(*), count(DISTINCT _row_number) FROM clay_bom_crlf").fetchone() == (
        12,
        12,
    )
    # Another file with the same columns adds its own rows to the table.
    load_export(SAMPLES / "clay_lf.csv", con, table="clay_bom_crlf")
    assert con.execute("SELECT count(*) FROM clay_bom_crlf").fetchone()[0] == 24


def test_other_columns_into_a_shared_table_are_refused(con):
    load_export(SAMPLES / "clay_lf.csv", con, table="leads")
    with pytest.raises(ExportError, match="other columns.*--table"):
        load_export(SAMPLES / "clay_duplicate_headers.csv", con, table="leads")
    assert con.execute("SELECT count(*) FROM leads").fetchone()[0] == 12


def test_header_only_export_gives_an_empty_table(con):
    loaded = load_export(SAMPLES / "clay_header_only.csv", con)
    assert (loaded.rows, loaded.columns) == (0, 34)
    assert con.execute("SELECT count(*) FROM clay_header_only").fetchone()[0] == 0


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", r"is empty \(not even a header line\)"),
        ("not_a_clay_export.csv", None, r"line 2: found 2 fields where the header has 1.*looks like JSON"),
        ("ragged.csv", b'"a","b"\n"1","2"\n"3"\n', r"line 3: found 1 fields where the header has 2"),
        ("open.csv", b'"a","b"\n"1","2\n3\n', r"line 2: the CSV does not parse"),
        ("stray.csv", b'"a","b"\n"1"x,"2"\n', r"line 2: the CSV does not parse"),
        (
            "sheet.xlsx",
            b'"a"\n"ok"\n"\xd0\xcf\x11\xe0\xa1\xb1"\n',
            r"line 3, column 2: byte 0xd0 is not UTF-8",
        ),
        (
            "unicode.txt",
            '"Name","Work Email"\r\n"Ann","ann@acme.com"\r\n'.encode("utf-16"),
            r"is UTF-16 text .*while Clay exports are UTF-8",
        ),
        (
            "semicolons.csv",
            b"Name;Work Email\nAnn;ann@acme.com\n",
            r"line 1: the header is one column, 'Name;Work Email', with semicolons in it: this file is "
            r"separated by semicolons",
        ),
        ("tabs.csv", b"Name\tWork Email\nAnn\tann@acme.com\n", r"line 1: .*this file is separated by tabs"),
    ],
)
def test_files_that_are_not_clay_exports_get_an_error_naming_the_line(con, tmp_path, name, content, message):
    path = SAMPLES / name if content is None else tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ExportError, match=message) as caught:
        load_export(path, con)
    assert str(path) in str(caught.value)
    assert not con.execute("SELECT count(*) FROM information_schema.tables").fetchone()[0]


def test_one_quoted_column_may_hold_a_semicolon(con, tmp_path):
    """Clay quotes every cell: a quoted header is one column, whatever is in its name."""
    path = tmp_path / "notes.csv"
    path.write_text('"Notes; internal"\n"call back; after Q3"\n', encoding="utf-8")
    load_export(path, con)
    assert con.execute('SELECT "Notes; internal" FROM notes').fetchall() == [("call back; after Q3",)]


def test_a_bad_line_loses_nothing_already_loaded(con, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text('"a"\n"1"\n', encoding="utf-8")
    load_export(path, con)
    path.write_text('"a"\n"2"\n"3","4"\n', encoding="utf-8")
    with pytest.raises(ExportError, match="line 3"):
        load_export(path, con)
    assert con.execute("SELECT a FROM leads").fetchall() == [("1",)]


def test_reader_streams_rows_with_numbers():
    with ExportReader(SAMPLES / "clay_duplicate_headers.csv") as reader:
        assert reader.columns[:3] == ["Full Name", "Email", "Email (2)"]
        assert [n for n, _ in reader.rows()] == [1, 2]


def test_default_table_names():
    assert table_name_for("exports/Leads Q3.csv") == "leads_q3"
    assert table_name_for("2026 leads.csv") == "export_2026_leads"

"""Whatever the cells hold, an export written as Clay writes it loads back exactly."""

import csv

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.clay import ExportReader, load_export

cell = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
) | st.sampled_from(
    ['"', '""', ",", "\n", "00123", "+1 415 555 0100", "✅ a@b.co", "❌ none", '{"a": [1]}', " "]
)
header = st.lists(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=8,
    )
    | st.sampled_from(["A", "a", "A (2)", " "]),
    min_size=1,
    max_size=6,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=header, data=st.data(), bom=st.booleans(), crlf=st.booleans())
def test_cells_round_trip(tmp_path_factory, header, data, bom, crlf):
    rows = data.draw(st.lists(st.lists(cell, min_size=len(header), max_size=len(header)), max_size=8))
    path = tmp_path_factory.mktemp("rt") / "export.csv"
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n" if crlf else "\n")
        writer.writerow(header)
        writer.writerows(rows)
    with ExportReader(path) as reader:
        assert reader.header == header
        assert [cells for _, cells in reader.rows()] == rows
    con = duckdb.connect()
    loaded = load_export(path, con, table="t")
    assert (loaded.rows, loaded.columns) == (len(rows), len(header))
    got = con.execute("SELECT * EXCLUDE (_row_number, _source_file, _loaded_at) FROM t ORDER BY _row_number")
    assert [[c if c is not None else "" for c in r] for r in got.fetchall()] == rows
    con.close()

"""The notebooks' work directory: a designer works on an in-memory copy, so no kernel holds the file."""

import subprocess
import sys

import duckdb

from workbench.designer import MappingDesigner
from workbench.designer.workspace import workspace

WRITE = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE written_meanwhile AS SELECT 1 AS one")
con.close()
"""


def test_the_copy_leaves_the_database_free_for_another_process(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKDIR", str(tmp_path / "work"))
    ws = workspace()
    table = ws.ensure_sample()
    copy = ws.connect_copy()
    designer = MappingDesigner(copy, table)
    assert designer.table.rows == 200
    # Another process (the CLI, notebook 01) writes the file while the designer is open.
    result = subprocess.run(
        [sys.executable, "-c", WRITE, str(ws.duckdb_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    check = duckdb.connect(str(ws.duckdb_path), read_only=True)
    assert check.execute("SELECT one FROM written_meanwhile").fetchone() == (1,)
    check.close()
    assert designer.table.sample(1)  # the copy still reads

from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
CONFIG = ROOT / "mappings" / "clay.json"


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "workbench.duckdb"))
    yield connection
    connection.close()

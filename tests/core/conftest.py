import copy
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "mappings" / "clay.json"
SAMPLE_BODY = ROOT / "data" / "samples" / "lead.enriched.json"


@pytest.fixture
def raw_config():
    """A fresh, editable copy of the default Clay config."""
    return copy.deepcopy(json.loads(DEFAULT_CONFIG.read_text()))


@pytest.fixture
def lead_body():
    return json.loads(SAMPLE_BODY.read_text())

"""The fake's copy of Knock's management API description is the Sources part of Knock's own file, unchanged."""

import os
from pathlib import Path

import pytest
import yaml

from tests.fakes.knock_mapi import SPEC_PATH

ROOT = Path(__file__).resolve().parents[2]
# Where the fake Knock looks too (KNOCK_SPEC_DIR, else the checkout's sibling shared/knock); and
# from a worktree one level further down.
CANDIDATES = [
    *([Path(os.environ["KNOCK_SPEC_DIR"])] if os.environ.get("KNOCK_SPEC_DIR") else []),
    ROOT.parent / "shared" / "knock",
    ROOT.parent.parent / "shared" / "knock",
]


def _load(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def test_the_copy_matches_knocks_file():
    full_path = next((d / "mapi-openapi.yml" for d in CANDIDATES if (d / "mapi-openapi.yml").is_file()), None)
    if full_path is None:
        pytest.skip(
            "Knock's full mapi-openapi.yml is not next to this checkout (../shared/knock, or KNOCK_SPEC_DIR)"
        )
    full, copy = _load(full_path), _load(SPEC_PATH)
    for template, item in copy["paths"].items():
        for method, operation in item.items():
            original = dict(full["paths"][template][method])
            original.pop("x-stainless-snippets", None)
            assert operation == original, f"{method.upper()} {template}"
    for name, schema in copy["components"]["schemas"].items():
        assert schema == full["components"]["schemas"][name], name
    sources = {p for p in full["paths"] if p.startswith(("/v1/sources", "/v1/source_providers"))}
    assert set(copy["paths"]) == sources

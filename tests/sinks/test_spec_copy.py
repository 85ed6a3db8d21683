"""The fake Knock's copy of Knock's API description is Knock's own file, less its SDK code samples."""

import os
from pathlib import Path

import pytest
import yaml

from tests.fakes.knock_spec import API_SPEC, OVERVIEW

ROOT = Path(__file__).resolve().parents[2]
# Knock's files next to the checkout (or where KNOCK_SOURCE_DIR points), from a worktree one level down too.
CANDIDATES = [
    *([Path(os.environ["KNOCK_SOURCE_DIR"])] if os.environ.get("KNOCK_SOURCE_DIR") else []),
    ROOT.parent / "shared" / "knock",
    ROOT.parent.parent / "shared" / "knock",
]
ORIGINAL = next((d for d in CANDIDATES if (d / "api-openapi.yml").is_file()), None)


def _load(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _without_samples(node):
    if isinstance(node, dict):
        return {k: _without_samples(v) for k, v in node.items() if k != "x-stainless-snippets"}
    if isinstance(node, list):
        return [_without_samples(v) for v in node]
    return node


@pytest.mark.skipif(ORIGINAL is None, reason="Knock's api-openapi.yml is not next to this checkout")
def test_the_copy_is_knocks_file_without_code_samples():
    assert _load(API_SPEC) == _without_samples(_load(ORIGINAL / "api-openapi.yml"))
    assert OVERVIEW.read_bytes() == (ORIGINAL / "api-reference-overview.mdx").read_bytes()


def test_the_copy_describes_knocks_api():
    spec = _load(API_SPEC)
    assert spec["openapi"].startswith("3.")
    assert "/v1/users/bulk/identify" in spec["paths"]
    tiers = {
        op.get("x-ratelimit-tier")
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
    }
    assert {1, 2, 3, 4} <= tiers

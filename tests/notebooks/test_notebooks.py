"""The four notebooks: thin (imports from workbench, no def/class), and run top to bottom by nbval.

Each notebook runs in its own `pytest --nbval-lax` process with `WORKBENCH_WORKDIR` pointing at a
temporary directory, so nothing is written into the project; cells marked `# NBVAL_CHECK_OUTPUT`
must reproduce their stored output (ids, timestamps and ports sanitized by `sanitize.cfg`).
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SANITIZE = Path(__file__).with_name("sanitize.cfg")
NAMES = ["01-load-clay-export", "02-design-mappings", "03-backfill", "04-live-receiver"]


def code_cells(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def test_the_four_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin(notebook):
    cells = code_cells(notebook)
    first = ast.parse(cells[0])
    assert any(
        isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workbench")
        for node in first.body
    ), "the first cell imports from workbench"
    for source in cells:
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), (
                f"{notebook.name}: definitions belong in the package, not in a notebook:\n{source}"
            )
    checked = [s for s in cells if "# NBVAL_CHECK_OUTPUT" in s]
    assert checked, "at least one cell's output is checked"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(notebook, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "CLAY_SIGNING_SECRET_"))}
    env.update(WORKBENCH_WORKDIR=str(tmp_path / "work"))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--nbval-lax",
        f"--nbval-sanitize-with={SANITIZE}",
        "--nbval-cell-timeout=180",
        str(notebook),
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]

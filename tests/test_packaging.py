"""The package declares what it imports, and its parts install apart: core alone, or core + receiver."""

import ast
import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "workbench"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])

# The core: configs, paths, verification, actions and the engine (and whatever they import).
CORE = ["workbench.config", "workbench.paths", "workbench.verify", "workbench.actions", "workbench.engine"]
# What a receiver on a server runs: the CLI, the HTTP app under gunicorn, the store and the sinks.
RECEIVER = [
    "workbench.cli",
    "workbench.receiver",
    "workbench.receiver.serving",
    "workbench.service",
    "workbench.store",
    "workbench.sinks",
    "workbench.sinks.local",
    "workbench.sinks.knock",
]


def _requirements(extra: str | None) -> list[Requirement]:
    listed = (
        PYPROJECT["project"]["dependencies"]
        if extra is None
        else PYPROJECT["project"]["optional-dependencies"][extra]
    )
    return [Requirement(text) for text in listed]


def _declared(extras: list[str | None]) -> set[str]:
    """Distribution names the project itself names for these extras (None: the base dependencies)."""
    names: set[str] = set()
    todo = list(extras)
    seen: set[str | None] = set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in _requirements(extra):
            if canonicalize_name(req.name) == PROJECT:
                todo.extend(req.extras)
            else:
                names.add(canonicalize_name(req.name))
    return names


def _closure(names: set[str]) -> set[str]:
    """These distributions and everything they require (as installed), which pip would install too."""
    found: set[str] = set()
    todo = [(name, frozenset()) for name in names]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in found:
            continue
        found.add((name, extras))
        try:
            required = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in required:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {name for name, _ in found}


def _distributions_of_modules() -> dict[str, set[str]]:
    return {
        module: {canonicalize_name(d) for d in dists}
        for module, dists in metadata.packages_distributions().items()
    }


def _third_party_imports() -> set[str]:
    """Top-level names that modules under src/ import, other than the standard library's and our own."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"workbench", "__future__"}


def test_every_import_is_declared():
    everything = _declared([None, *PYPROJECT["project"]["optional-dependencies"]]) - _declared(["dev"])
    owners = _distributions_of_modules()
    undeclared = {
        name: sorted(owners.get(name, {"?"}))
        for name in _third_party_imports()
        if not owners.get(name, set()) & everything
    }
    assert not undeclared, f"imported under src/ but not declared in pyproject.toml: {undeclared}"


def _modules_loaded_by(modules: list[str], allowed: set[str] | None = None) -> set[str]:
    """Top-level third-party modules loaded by importing `modules` in a fresh interpreter.

    With `allowed`, any other third-party import fails there as it would where it is not installed."""
    script = f"""
import importlib, json, sys
allowed = {sorted(allowed) if allowed is not None else None!r}
stdlib = set(sys.stdlib_module_names) | {{"workbench", "__future__", "_distutils_hack"}}

class Absent:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if allowed is not None and top not in stdlib and top not in allowed and not top.startswith("_"):
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed with this extra)", name=name)
        return None

sys.meta_path.insert(0, Absent())
for module in {modules!r}:
    importlib.import_module(module)
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} - stdlib)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _modules_of(distributions: set[str]) -> set[str]:
    return {module for module, dists in _distributions_of_modules().items() if dists & distributions}


def test_core_modules_import_no_adapter():
    adapters = _declared(["receiver", "clay", "notebook"]) - _declared([None])
    loaded = _modules_loaded_by(CORE)
    leaked = loaded & _modules_of(adapters)
    assert not leaked, f"core modules load adapter libraries: {sorted(leaked)}"


def test_the_receiver_extra_is_enough_for_the_receiver():
    installed = _closure(_declared([None, "receiver"]))
    allowed = _modules_of(installed)
    loaded = _modules_loaded_by(RECEIVER, allowed=allowed)
    assert {"flask", "gunicorn"} <= loaded
    assert not loaded & {"duckdb", "pandas", "ipywidgets", "jupyterlab", "matplotlib"}


def test_the_receiver_extra_leaves_out_the_notebook_stack():
    installed = _closure(_declared([None, "receiver"]))
    assert not installed & {"jupyterlab", "matplotlib", "ipywidgets", "duckdb", "pandas"}, sorted(installed)

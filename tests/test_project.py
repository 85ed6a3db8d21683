"""The project's own promises: set-up files in step, every CLI command documented."""

import re
import tomllib
from pathlib import Path

import yaml

from workbench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_is_in_step_with_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = pyproject["project"]["requires-python"].removeprefix(">=")
    assert python.split("=")[-1].startswith(minimum), (python, minimum)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e .[all,dev]" in pip
    assert "-e '.[all,dev]'" in (ROOT / "Makefile").read_text()
    extras = pyproject["project"]["optional-dependencies"]
    assert {"all", "dev", "receiver"} <= set(extras)
    for requirement in pyproject["project"]["dependencies"] + sum(extras.values(), []):
        if requirement.startswith(pyproject["project"]["name"] + "["):
            continue  # one extra made of others
        assert re.search(r">=\d", requirement), f"{requirement} needs a lower bound"


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("## ")[0]
    assert "make run" in head and "make test" in head


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_cli_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in main.commands if f"workbench {name}" not in readme]
    assert not missing, f"commands not documented in README.md: {missing}"

"""`workbench serve` refuses what it cannot serve before any worker starts."""

from __future__ import annotations

import json

from click.testing import CliRunner

from workbench.cli import main


def test_bad_config_exits_2_with_every_problem(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"source": "clay", "environments": {"development": {"signing_secrets": ["literal"]}}})
    )
    result = CliRunner().invoke(main, ["serve", str(bad), "--store", f"sqlite:///{tmp_path / 'e.sqlite'}"])
    assert result.exit_code == 2
    assert "environments.development" in result.output
    assert not (tmp_path / "e.sqlite").exists()


def test_missing_config_file_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_help_names_the_options():
    result = CliRunner().invoke(main, ["serve", "--help"])
    for option in ("--store", "--host", "--port", "--workers", "--retry-interval", "--access-log"):
        assert option in result.output

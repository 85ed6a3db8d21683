"""`workbench serve` refuses what it cannot serve before any worker starts."""

from __future__ import annotations

import json
import socket

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


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        store = tmp_path / "e.sqlite"
        result = CliRunner().invoke(main, ["serve", "--store", f"sqlite:///{store}", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
    assert "Choose another port with --port" in result.output
    assert "Receiving at" not in result.output and not store.exists()


def test_an_unknown_host_is_refused(tmp_path):
    result = CliRunner().invoke(
        main, ["serve", "--store", f"sqlite:///{tmp_path / 'e.sqlite'}", "--host", "no-such-host.invalid"]
    )
    assert (
        result.exit_code == 1 and "cannot listen on no-such-host.invalid:8000: unknown host" in result.output
    )

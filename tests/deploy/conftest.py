"""The fake Knock management API, a client on it, and the contract line at the end of the run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.fakes.knock_mapi import SERVICE_TOKEN, contract_line, fake_mapi  # noqa: F401
from workbench.deploy import ManagementClient

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "mappings" / "clay.json"


def pytest_terminal_summary(terminalreporter):
    line = contract_line()
    if line:
        terminalreporter.write_line(line)


@pytest.fixture
def client(fake_mapi):  # noqa: F811
    waits: list[float] = []
    with ManagementClient(token=SERVICE_TOKEN, base_url=fake_mapi.url, sleep=waits.append) as c:
        c.waits = waits
        yield c


@pytest.fixture
def default_config() -> dict:
    return json.loads(DEFAULT_CONFIG.read_text(encoding="utf-8"))


def knock_ready(config: dict) -> dict:
    """The shipped config's development environment, reduced to what Knock's sources run."""
    data = copy.deepcopy(config)
    data["environments"] = {"development": data["environments"]["development"]}
    mappings = data["environments"]["development"]["mappings"]
    mappings[1]["params"]["id"] = "body.company_domain"
    trigger = mappings[2]
    del trigger["when"]
    trigger["params"]["recipients"] = "body.recipients"
    data["clay"]["body_template"]["recipients"] = {"value": ["sales-team"]}
    return data

"""Service fixtures: a config in tmp_path (local, deduplicating and knock environments), a real
SQLite store, the fake Knock API and a clock the test moves."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.knock import API_KEY
from workbench.config import ConfigSet
from workbench.retry import RetryPolicy
from workbench.service import SourceService
from workbench.store import Store

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "data" / "samples" / "lead.enriched.json").read_text())
SECRET = "whsec-current-1"
NEXT_SECRET = "whsec-next-2"
ENVIRON = {
    "CLAY_SIGNING_SECRET_DEVELOPMENT": SECRET,
    "CLAY_SIGNING_SECRET_NEXT": NEXT_SECRET,
    "KNOCK_API_KEY": API_KEY,
}
TRIGGER = {
    "event": "lead.enriched",
    "action": "workflows_trigger",
    "params": {"key": {"value": "new-lead"}, "recipients": {"value": ["sales-team"]}, "actor": "body.email"},
}


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self):
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def service_config(knock_url: str) -> dict:
    raw = json.loads((ROOT / "mappings" / "clay.json").read_text())
    dev = raw["environments"]["development"]
    dev["signing_secrets"] = [
        {"$env": "CLAY_SIGNING_SECRET_DEVELOPMENT"},
        {"$env": "CLAY_SIGNING_SECRET_NEXT"},
    ]
    dedupe = copy.deepcopy(dev)
    dedupe["idempotency"] = {"key": "body.row_id", "window_hours": 24}
    dedupe["mappings"].append(TRIGGER)
    knock = copy.deepcopy(dedupe)
    knock["sink"] = {
        "type": "knock",
        "api_key": {"$env": "KNOCK_API_KEY"},
        "base_url": knock_url,
        "timeout": 1,
    }
    raw["environments"] = {"development": dev, "dedupe": dedupe, "knock": knock}
    return raw


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def config_path(tmp_path, fake_knock):
    path = tmp_path / "clay.json"
    path.write_text(json.dumps(service_config(fake_knock.url), indent=2))
    return path


@pytest.fixture
def store_url(tmp_path):
    return f"sqlite:///{tmp_path / 'workbench.sqlite'}"


@pytest.fixture
def store(store_url):
    store = Store(store_url, retry=RetryPolicy(base_seconds=10, max_seconds=600, max_attempts=4))
    yield store
    store.close()


@pytest.fixture
def service(config_path, store, clock):
    return SourceService(ConfigSet([config_path]), store, environ=ENVIRON, clock=clock)


def lead(**changes) -> dict:
    return {**SAMPLE, **changes}


def post(service, body, env="development", secret=SECRET, source="clay", headers=None):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body).encode()
    given = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json", **(headers or {})}
    return service.receive(source, env, given, raw)

"""Receiver fixtures: a config written to tmp_path, the app under Flask's test client, and
real `workbench serve` processes on loopback."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "mappings" / "clay.json"
SAMPLE_BODY = json.loads((ROOT / "data" / "samples" / "lead.enriched.json").read_text())
WORKBENCH = Path(sys.executable).parent / "workbench"

SECRET = "whsec-current-3f1c9a"
NEXT_SECRET = "whsec-next-77ab02"
ADMIN_TOKEN = "admin-token-5e8d41"
ENVIRON = {
    "CLAY_SIGNING_SECRET_DEVELOPMENT": SECRET,
    "CLAY_SIGNING_SECRET_DEVELOPMENT_NEXT": NEXT_SECRET,
    "KNOCK_API_KEY": "sk_test_unused",
}


def closed_port() -> int:
    """A loopback port nothing listens on, so a knock sink pointed there fails transiently."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def receiver_config() -> dict:
    """The default Clay config with rotated secrets, a header-path mapping, a deduplicating
    environment (with an event of two actions) and one whose Knock is unreachable."""
    raw = json.loads(DEFAULT_CONFIG.read_text())
    dev = raw["environments"]["development"]
    dev["signing_secrets"] = [
        {"$env": "CLAY_SIGNING_SECRET_DEVELOPMENT"},
        {"$env": "CLAY_SIGNING_SECRET_DEVELOPMENT_NEXT"},
    ]
    dev["mappings"].append(
        {
            "event": "table.row",
            "action": "tenants_set",
            "params": {"id": "headers.x-clay-table-id", "name": "body.table_name"},
        }
    )
    dedupe = copy.deepcopy(dev)
    dedupe["idempotency"] = {"key": "body.row_id", "window_hours": 24}
    # Two actions, of which only the identify needs the email.
    dedupe["mappings"] += [
        {
            "event": "lead.qualified",
            "action": "workflows_trigger",
            "params": {"key": {"value": "lead-qualified"}, "recipients": {"value": ["sales-team"]}},
        },
        {"event": "lead.qualified", "action": "users_identify", "params": {"id": "body.email"}},
    ]
    flaky = copy.deepcopy(dev)
    flaky["sink"] = {
        "type": "knock",
        "api_key": {"$env": "KNOCK_API_KEY"},
        "base_url": f"http://127.0.0.1:{closed_port()}",
    }
    raw["environments"] = {"development": dev, "dedupe": dedupe, "flaky": flaky}
    return raw


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(json.dumps(raw, indent=2))
    return path


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path / "clay.json", receiver_config())


STORES = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]


def pytest_generate_tests(metafunc):
    # Every test that opens a store runs on both; the `http` fixture picks its store itself.
    if "store_url" in metafunc.fixturenames and "http" not in metafunc.fixturenames:
        metafunc.parametrize("store_url", STORES, indirect=True)


def store_url_for(kind: str, request) -> str:
    """A SQLite file in the test's tmp_path, or a fresh PostgreSQL database."""
    if kind == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{request.getfixturevalue('tmp_path') / 'events.sqlite'}"


@pytest.fixture
def store_url(request):
    return store_url_for(getattr(request, "param", "sqlite"), request)


def build_app(config_path, store_url, **overrides):
    from workbench.receiver import create_app

    config = {
        "CONFIG_PATHS": [config_path],
        "STORE_URL": store_url,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ENVIRON": ENVIRON,
        "RELOAD_INTERVAL": 0,
        "TESTING": True,
        **overrides,
    }
    return create_app(config)


@pytest.fixture
def make_app(config_path, store_url):
    def make(**overrides):
        return build_app(config_path, store_url, **overrides)

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def auth(secret: str = SECRET) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def admin(token: str = ADMIN_TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def lead(**changes) -> dict:
    return {**SAMPLE_BODY, **changes}


class Served:
    """`workbench serve` in a subprocess (its own process group) on an ephemeral loopback port."""

    def __init__(
        self, config_path, store_url, workers=2, admin_token=ADMIN_TOKEN, extra_env=None, log=None, args=()
    ):
        env = {**os.environ, **ENVIRON, **(extra_env or {})}
        env.pop("WORKBENCH_ADMIN_TOKEN", None)
        if admin_token:
            env["WORKBENCH_ADMIN_TOKEN"] = admin_token
        self.log_path = Path(log) if log else Path(str(store_url).rsplit("/", 1)[-1] + ".log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [str(WORKBENCH), "serve", str(config_path), "--store", store_url, "--port", "0"]
        cmd += ["--workers", str(workers), "--retry-interval", "1", *args]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url = self._wait_for_url(workers)

    def _wait_for_url(self, workers: int, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            found = re.search(r"Listening at: (http://\S+)", text)
            booted = len(re.findall(r"Booting worker", text))
            if self.proc.poll() is not None:
                raise RuntimeError(f"workbench serve exited with {self.proc.returncode}:\n{text}")
            if found and booted >= workers:
                url = found.group(1)
                try:
                    if requests.get(f"{url}/healthz", timeout=5).ok:
                        return url
                except requests.ConnectionError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"workbench serve did not come up:\n{self.log_path.read_text(errors='replace')}")

    def post(self, path="/sources/clay/development", body=None, headers=None, **kwargs):
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        return requests.post(self.url + path, data=data, headers=headers or {}, timeout=60, **kwargs)

    def get(self, path, headers=None, **kwargs):
        return requests.get(
            self.url + path, headers=headers if headers is not None else admin(), timeout=30, **kwargs
        )

    def kill(self) -> None:
        """SIGKILL the whole server (master and workers), as a crash or an OOM kill would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self._log.close()


def _served(base: Path, store_url: str):
    config = write_config(base / "clay.json", receiver_config())
    server = Served(config, store_url, log=base / "serve.log")
    server.config_path = config
    return server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One two-worker server for a test module, on its own config and store."""
    base = tmp_path_factory.mktemp("served")
    server = _served(base, f"sqlite:///{base / 'events.sqlite'}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served_postgres(tmp_path_factory, postgres_server):
    """The same on a PostgreSQL database of its own."""
    server = _served(tmp_path_factory.mktemp("served-pg"), postgres_server.create_database())
    yield server
    server.stop()

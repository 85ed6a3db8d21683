"""Reliability fixtures: a deduplicating config whose triggers are countable, and `workbench serve`
instances in subprocesses sharing one database."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
WORKBENCH = Path(sys.executable).parent / "workbench"
SECRET = "whsec-reliability-51d0c2"
ENVIRON = {"CLAY_SIGNING_SECRET_DEVELOPMENT": SECRET, "KNOCK_API_KEY": "sk_test_fake_knock"}
INGEST = "/sources/clay/development"
WORKFLOW = "new-enriched-lead"


def reliability_config(knock_url: str | None = None) -> dict:
    """The default Clay config, deduplicating on `body.row_id`, with a workflow trigger per row so a
    row that ran twice shows as two runs. With `knock_url`, a `knock` environment sends there."""
    raw = json.loads((ROOT / "mappings" / "clay.json").read_text())
    dev = raw["environments"]["development"]
    dev["idempotency"] = {"key": "body.row_id", "window_hours": 24}
    dev["mappings"].append(
        {
            "event": "lead.enriched",
            "action": "workflows_trigger",
            "params": {
                "key": {"value": WORKFLOW},
                "recipients": {"value": ["sales-team"]},
                "actor": "body.email",
                "data": "body",
            },
        }
    )
    environments = {"development": dev}
    if knock_url:
        environments["knock"] = {
            **dev,
            "sink": {
                "type": "knock",
                "api_key": {"$env": "KNOCK_API_KEY"},
                "base_url": knock_url,
                "timeout": 2,
            },
        }
    raw["environments"] = environments
    return raw


def write_config(path: Path, knock_url: str | None = None) -> Path:
    path.write_text(json.dumps(reliability_config(knock_url), indent=2))
    return path


def row(row_id: str) -> dict:
    return {
        "event": "lead.enriched",
        "row_id": row_id,
        "email": f"lead-{row_id}@acme.example",
        "full_name": "Jane Doe",
        "company_domain": "acme.example",
        "icp_score": "87",
    }


class Instance:
    """One `workbench serve` (its own process group) on a free loopback port; `restart()` after a kill."""

    def __init__(self, name: str, config: Path, store_url: str, logs: Path, workers: int = 2):
        self.name, self.config, self.store_url, self.workers = name, config, store_url, workers
        self.logs = logs
        self.starts = 0
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self, timeout: float = 90) -> None:
        self.starts += 1
        self.log_path = self.logs / f"{self.name}-{self.starts}.log"
        env = {**os.environ, **ENVIRON}
        env.pop("WORKBENCH_ADMIN_TOKEN", None)
        cmd = [str(WORKBENCH), "serve", str(self.config), "--store", self.store_url, "--port", "0"]
        cmd += ["--workers", str(self.workers), "--retry-interval", "1"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{text}")
            found = re.search(r"Listening at: (http://\S+)", text)
            if found and len(re.findall(r"Booting worker", text)) >= self.workers:
                try:
                    if requests.get(found.group(1) + "/healthz", timeout=5).ok:
                        self.url = found.group(1)
                        return
                except requests.ConnectionError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not come up:\n{self.log_path.read_text(errors='replace')}")

    def kill(self) -> None:
        """SIGKILL the master and its workers at once, as a crash or an OOM kill would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # graceful: requests in flight finish first
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

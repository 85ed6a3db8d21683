"""JupyterLab in Debian's Chromium: run notebook 02, pick another column, see the preview change, save."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a free loopback port with a token, its kernels writing under tmp_path."""
    token = secrets.token_hex(16)
    port = free_port()
    work = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_WORKDIR=str(work),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        MPLBACKEND="Agg",
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT / 'notebooks'}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
        f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
        "--LabApp.expose_app_in_browser=True",
        "--allow-root",  # CI runs as root
    ]
    log = open(tmp_path / "jupyter.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{base}/api/status", params={"token": token}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-4000:])
            time.sleep(0.5)
        yield base, token, work
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()


def test_design_in_jupyterlab_and_save(lab, browser):
    base, token, work = lab
    saved = work / "designed.json"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{base}/lab/tree/02-design-mappings.ipynb?token={token}")
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
        timeout=90_000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # The last cell saves once from code and prints the Clay set-up: the notebook has run.
    page.get_by_text("Method: POST").first.wait_for(timeout=120_000)
    assert json.loads(saved.read_text())["environments"]["development"]["mappings"][0]["params"]["id"] == (
        "body.email"
    )

    preview = page.locator(".wb-preview-area").first
    first_row = preview.locator("tr[data-row='1']")
    before = first_row.inner_text()
    assert "failed" in before  # the first sample row has no Work Email

    page.locator(".wb-param-id-column select").first.select_option("Company Domain")
    page.wait_for_function(
        "(before) => { const row = document.querySelector(\".wb-preview-area tr[data-row='1']\");"
        " return row && row.innerText !== before; }",
        arg=before,
    )
    after = first_row.inner_text()
    assert "processed" in after and "wayne.co" in after

    page.locator(".wb-save button, button.wb-save").first.click()
    deadline = time.monotonic() + 30
    while True:
        mapping = json.loads(saved.read_text())["environments"]["development"]["mappings"][0]
        if mapping["params"]["id"] == "body.company_domain":
            break
        assert time.monotonic() < deadline, f"the saved config still says {mapping['params']['id']!r}"
        time.sleep(0.3)
    page.close()

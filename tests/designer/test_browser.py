"""JupyterLab in Debian's Chromium: the designer story of notebook 02, from suggestions to a saved file."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import requests

from workbench import load_config
from workbench.clay import load_export, row_to_body
from workbench.designer import ExportTable, preview_rows
from workbench.designer.preview import key_fields

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
    # No "get notified about Jupyter news?" toast over the page (it would ask the closed network).
    notification = (
        tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    )
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
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


def screen_rows(page):
    """The preview as the page shows it: (row, status, key fields) a line."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.wb-preview-area tr.wb-row')].map(tr => [
            Number(tr.dataset.row), tr.children[1].innerText.trim(), tr.querySelector('summary').innerText.trim()])"""
    )


def wait_until(page, script, arg=None, timeout=120_000):
    page.wait_for_function(script, arg=arg, timeout=timeout)


def test_the_designer_story_in_jupyterlab(lab, browser):
    """Accept the suggestions, change a column, break and fix a condition (Save refused, then
    allowed), save: the file holds exactly what the screen showed."""
    base, token, work = lab
    saved = work / "designed.json"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{base}/lab/tree/02-design-mappings.ipynb?token={token}")
    wait_until(
        page,
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
    )
    # Run the cells up to the designer (the next one would accept the suggestions from code).
    page.evaluate(
        """async () => {
            const app = window.jupyterapp;
            app.shell.currentWidget.content.activeCellIndex = 2;
            await app.commands.execute('notebook:run-all-above');
            await app.commands.execute('notebook:run-cell');
        }"""
    )
    accept = page.locator(".wb-suggestion .wb-accept")
    accept.first.wait_for(timeout=180_000)
    suggested = page.locator(".wb-suggestion").all_inner_texts()
    assert any("users_identify id ← “Work Email”" in text for text in suggested), suggested

    # Accept every suggestion, one by one.
    while (left := accept.count()) > 0:
        accept.first.click()
        wait_until(page, "(n) => document.querySelectorAll('.wb-suggestion .wb-accept').length < n", left)
    wait_until(page, "() => document.querySelector(\".wb-preview-area tr[data-row='1']\")")
    first = page.locator(".wb-preview-area tr[data-row='1']")
    assert "failed" in first.inner_text()  # the first row has no Work Email

    # Change a column: the user id now comes from the company domain.
    page.locator(".wb-param-id-column select").first.select_option("Company Domain")
    wait_until(
        page,
        "() => { const row = document.querySelector(\".wb-preview-area tr[data-row='1']\");"
        " return row && row.innerText.includes('processed') && row.innerText.includes('id=wayne.co'); }",
    )

    # Break a condition: the error shows, Save is refused and writes nothing.
    conditions = page.locator("textarea.wb-conditions, .wb-conditions textarea").first
    conditions.fill('[{"path": "body.icp_score", "as": "number", "gte": ')
    conditions.evaluate("(e) => e.blur()")
    wait_until(
        page, "() => (document.querySelector('.wb-error') || {}).innerText?.includes('not valid JSON')"
    )
    page.locator(".wb-save button, button.wb-save").first.click()
    page.locator(".wb-save-refused").first.wait_for()
    assert "not valid JSON" in page.locator(".wb-save-status").first.inner_text()
    assert not saved.exists()

    # Fix it: the error goes, Save is allowed and says when and where.
    condition = [{"path": "body.icp_score", "as": "number", "gte": 50}]
    conditions.fill(json.dumps(condition))
    conditions.evaluate("(e) => e.blur()")
    wait_until(page, "() => !document.querySelector('.wb-error')")
    wait_until(page, "() => [...document.querySelectorAll('.wb-chip')].some(c => c.title === 'skipped')")
    page.locator(".wb-save button, button.wb-save").first.click()
    page.locator(".wb-saved").first.wait_for()
    assert str(saved) in page.locator(".wb-save-status").first.inner_text()

    # The file holds exactly what the screen showed: the mapping, and the preview it makes.
    shown = screen_rows(page)
    config = load_config(saved)
    (mapping,) = config.environment("development").mappings_for("lead.enriched")
    assert mapping.raw["params"]["id"] == "body.company_domain"
    assert mapping.raw["when"] == condition
    assert json.loads(conditions.input_value()) == condition
    con = duckdb.connect()
    load_export(ROOT / "data" / "samples" / "clay_leads_sample.csv", con, table="clay_leads")
    rows = ExportTable(con, "clay_leads").sample(len(shown))
    expected = {
        row.row: (row.status, key_fields(row) or "(no payload)")
        for row in preview_rows(config, "development", rows, row_to_body, "lead.enriched")
    }
    assert {n: (status, fields) for n, status, fields in shown} == expected
    page.close()

"""The event-log page in Debian's Chromium: see a failed row, fix the config, replay, see it processed."""

from __future__ import annotations

import pytest
import requests

from .conftest import ADMIN_TOKEN, auth, receiver_config, write_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_replay_a_failed_event_from_the_page(browser, tmp_path):
    from workbench.receiver import run_in_background

    from .conftest import ENVIRON

    config = write_config(tmp_path / "clay.json", receiver_config())
    handle = run_in_background(
        config_paths=[config],
        store_url=f"sqlite:///{tmp_path / 'events.sqlite'}",
        ENVIRON=ENVIRON,
        ADMIN_TOKEN=ADMIN_TOKEN,
        RELOAD_INTERVAL=0,
        retry_interval=None,
    )
    try:
        row = {"event": "lead.enriched", "work_email": "jane@acme.com", "full_name": "Jane <b>Doe</b>"}
        reply = requests.post(handle.source_url(), json=row, headers=auth(), timeout=30).json()
        assert reply["status"] == "failed"
        event_id = reply["id"]

        context = browser.new_context(http_credentials={"username": "admin", "password": ADMIN_TOKEN})
        page = context.new_page()
        page.goto(handle.source_url())
        event = page.locator(f"details#{event_id}")
        assert event.get_attribute("data-status") == "failed"
        event.locator("summary").click()
        assert "param `id`" in event.inner_text() and "body.email" in event.inner_text()
        assert "Jane <b>Doe</b>" in event.locator("pre.raw-body").inner_text()  # shown as text, not markup

        raw = receiver_config()
        raw["environments"]["development"]["mappings"][0]["params"]["id"] = "body.work_email"
        write_config(config, raw)

        with page.expect_navigation():
            event.locator("button.replay").click()
        replayed = page.locator(f"details#{event_id}")
        assert page.locator("#replay-notice").is_visible()
        assert replayed.get_attribute("data-status") == "processed"
        assert replayed.locator("button.replay").count() == 0
        assert "success" in replayed.locator("tr.action").inner_text()
        context.close()
    finally:
        handle.stop()

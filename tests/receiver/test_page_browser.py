"""The event-log page in Debian's Chromium: page through the log, search, filter, fix the config,
replay one failed event, then replay all the failed ones that match the filter."""

from __future__ import annotations

import re

import pytest
import requests

from .conftest import ADMIN_TOKEN, ENVIRON, admin, auth, receiver_config, write_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# Generous: the machine running the suite may be busy with much else.
WAIT_MS = 60_000


@pytest.fixture
def receiver(tmp_path):
    from workbench.receiver import run_in_background

    config = write_config(tmp_path / "clay.json", receiver_config())
    handle = run_in_background(
        config_paths=[config],
        store_url=f"sqlite:///{tmp_path / 'events.sqlite'}",
        ENVIRON=ENVIRON,
        ADMIN_TOKEN=ADMIN_TOKEN,
        RELOAD_INTERVAL=0,
        retry_interval=None,
    )
    handle.config_path = config
    yield handle
    handle.stop()


def send(handle, row) -> dict:
    return requests.post(handle.source_url(), json=row, headers=auth(), timeout=60).json()


def shown_ids(page) -> list[str]:
    return page.locator("details.event").evaluate_all("rows => rows.map(r => r.id)")


def test_search_filter_paginate_and_replay_from_the_page(browser, receiver):
    from playwright.sync_api import expect

    sent = []
    for n in range(7):
        sent.append(
            send(receiver, {"event": "lead.enriched", "email": f"jane{n}@acme.com", "full_name": f"Jane {n}"})
        )
    for n in range(3):
        sent.append(send(receiver, {"event": "lead.enriched", "work_email": f"kim{n}@acme.com"}))
    assert [s["status"] for s in sent] == ["processed"] * 7 + ["failed"] * 3
    newest_first = [s["id"] for s in reversed(sent)]
    failed = newest_first[:3]

    context = browser.new_context(http_credentials={"username": "admin", "password": ADMIN_TOKEN})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()

    # Paginate: four a page, older then newer again.
    page.goto(receiver.source_url() + "?limit=4")
    expect(page.locator("details.event")).to_have_count(4)
    pages = [shown_ids(page)]
    while page.locator("a.older").count():
        page.locator("a.older").click()
        page.wait_for_url(re.compile(r"before="))
        expect(page.locator("details.event").first).not_to_have_id(pages[-1][0])
        pages.append(shown_ids(page))
    assert [i for p in pages for i in p] == newest_first and len(pages) == 3
    page.locator("a.newer").click()
    expect(page.locator("details.event").first).to_have_id(pages[1][0])

    # Each row: the local time to the second (the exact value on hover), who, and why it failed.
    first_time = page.locator("details.event time").first
    expect(first_time).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", first_time.get_attribute("title"))

    # Search.
    page.goto(receiver.source_url())
    page.locator("input[name=q]").fill("JANE3@acme")
    page.locator("form.filters button[type=submit]").click()
    expect(page.locator("details.event")).to_have_count(1)
    assert shown_ids(page) == [sent[3]["id"]]
    expect(page.locator("details.event .identity")).to_have_text("jane3@acme.com")

    # Filter: failed ones only; each says why.
    page.locator("input[name=q]").fill("")
    page.locator("select[name=status]").select_option("failed")
    page.locator("form.filters button[type=submit]").click()
    expect(page.locator("details.event")).to_have_count(3)
    assert shown_ids(page) == failed
    expect(page.locator("details.event .reason").first).to_contain_text("param `id`")

    # Fix the mapping, replay one: the notice tells the replay's own outcome, the filter stays.
    raw = receiver_config()
    raw["environments"]["development"]["mappings"][0]["params"]["id"] = "body.work_email"
    write_config(receiver.config_path, raw)
    row = page.locator(f"details#{failed[0]}")
    row.locator("summary").click()
    row.locator("button.replay").click()
    expect(page.locator("#replay-notice")).to_contain_text("now processed")
    expect(page.locator("#replay-notice")).to_contain_text("users_identify success")
    assert "status=failed" in page.url
    expect(page.locator("select[name=status]")).to_have_value("failed")
    expect(page.locator("details.event")).to_have_count(2)

    # Replay all failed matching the filter: a count, a confirmation, then the outcome.
    page.locator("a.replay-failed").click()
    expect(page.locator("#replay-failed-count")).to_have_text("2")
    page.locator("button.confirm-replay").click()
    expect(page.locator("#bulk-notice")).to_contain_text("Replayed 2 failed events: 2 now processed")
    expect(page.locator("#no-events")).to_be_visible()
    expect(page.locator("select[name=status]")).to_have_value("failed")
    context.close()

    for event_id in failed:
        entry = requests.get(f"{receiver.source_url()}/logs/{event_id}", headers=admin(), timeout=60).json()
        assert entry["status"] == "processed" and entry["replays"] == 1

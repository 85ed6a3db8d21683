"""Outcome colours: one per status word, failed red, skipped grey, applied green, everywhere."""

import pytest

from workbench.colours import GREEN, GREY, OUTCOME_COLOURS, OUTCOME_TINTS, RED, outcome_colours

# Every status the workbench reports: an event's, an action's, a backfill row's.
STATUSES = [
    "processed", "idempotent", "no_mapping", "queued", "invalid", "failed", "rejected",
    "success", "skipped", "applied", "unchanged",
]  # fmt: skip


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_has_a_colour_and_a_tint(status):
    assert status in OUTCOME_COLOURS and status in OUTCOME_TINTS


@pytest.mark.parametrize(
    ("status", "colour"),
    [
        ("failed", RED),
        ("invalid", RED),
        ("skipped", GREY),
        ("unchanged", GREY),
        ("applied", GREEN),
        ("success", GREEN),
    ],
)
def test_the_three_that_matter(status, colour):
    assert OUTCOME_COLOURS[status] == colour


def test_colours_follow_the_order_asked():
    assert outcome_colours(["applied", "failed", "skipped", "what"]) == [GREEN, RED, GREY, GREY]

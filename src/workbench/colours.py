"""The colours of outcomes, the same wherever one is shown: failed red, skipped grey, applied green.

`OUTCOME_COLOURS` are strong colours for charts and text, `OUTCOME_TINTS` light ones for table
cells. Every status word the workbench uses (an event's, an action's, a backfill row's) has one.
"""

from __future__ import annotations

from collections.abc import Iterable

RED, GREY, GREEN, AMBER = "#c5221f", "#80868b", "#188038", "#e37400"
RED_TINT, GREY_TINT, GREEN_TINT, AMBER_TINT = "#fce8e6", "#f1f3f4", "#e6f4ea", "#fef7e0"

_GROUPS = {
    # Something was refused or could not be done.
    (RED, RED_TINT): ("failed", "invalid", "rejected", "error"),
    # Nothing was done, on purpose.
    (GREY, GREY_TINT): ("skipped", "unchanged", "idempotent", "no_mapping"),
    # It was done.
    (GREEN, GREEN_TINT): ("applied", "success", "processed"),
    # It will be done later.
    (AMBER, AMBER_TINT): ("queued",),
}
OUTCOME_COLOURS: dict[str, str] = {s: colour for (colour, _), group in _GROUPS.items() for s in group}
OUTCOME_TINTS: dict[str, str] = {s: tint for (_, tint), group in _GROUPS.items() for s in group}


def outcome_colour(status: str) -> str:
    """The colour of one status (grey for a word the workbench does not use)."""
    return OUTCOME_COLOURS.get(status, GREY)


def outcome_colours(statuses: Iterable[str]) -> list[str]:
    """Colours in the order of `statuses`, e.g. for `pandas.Series.plot.bar(color=...)`."""
    return [outcome_colour(s) for s in statuses]

"""The preview of sample rows, built through the receiver's own path, and its HTML."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..colours import GREEN, GREY, OUTCOME_TINTS, RED, outcome_colour
from ..config import SourceConfig
from ..engine import Engine, SourceEvent
from ..errors import CoercionError
from ..sinks import DryRunSink
from .counts import MappingCount


@dataclass
class PreviewRow:
    row: int  # 1-based position in the table
    body: dict[str, Any]
    outcome: dict[str, Any]  # the receiver's response shape (status, event, actions with payloads)

    @property
    def status(self) -> str:
        return self.outcome["status"]

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "invalid")


def preview_rows(
    config: SourceConfig,
    environment: str,
    rows: list[Mapping[str, Any]],
    row_to_body: Callable[..., dict],
    event: str,
) -> list[PreviewRow]:
    """Each row as the Clay HTTP API column would POST it, run by the engine with a dry-run sink."""
    engine = Engine(config, environment, DryRunSink())
    template = config.body_template
    out = []
    for i, row in enumerate(rows, start=1):
        try:
            body = row_to_body(row, template, event)
        except CoercionError as exc:
            # The row cannot become a body at all: it would be stored as invalid.
            out.append(
                PreviewRow(i, {}, {"status": "invalid", "event": None, "error": str(exc), "actions": []})
            )
            continue
        # The bytes Clay would send, so parsing is the receiver's too.
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        outcome = engine.process(SourceEvent(raw, origin="backfill"))
        out.append(PreviewRow(i, body, outcome.to_dict()))
    return out


# The payload fields that say who or what a row is about, shown on the row's line.
KEY_FIELDS = ("id", "collection", "key", "email", "name", "recipients", "users", "tenant")
_CSS = """<style>
.wb-preview{border-collapse:collapse;font-size:12px;width:100%;table-layout:fixed}
.wb-preview th{text-align:left;border-bottom:1px solid #dadce0;padding:2px 6px}
.wb-preview td{padding:1px 6px;border-bottom:1px solid #f1f3f4;vertical-align:top;
  white-space:nowrap;overflow:hidden;text-overflow:ellipsis;line-height:20px}
.wb-preview details[open]{white-space:normal}
.wb-preview summary{cursor:pointer;overflow:hidden;text-overflow:ellipsis}
.wb-preview pre{white-space:pre-wrap;margin:2px 0;font-size:11px;max-height:320px;overflow:auto}
.wb-chip{border-radius:3px;padding:0 4px;margin-right:3px}
</style>"""


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def key_fields(row: PreviewRow) -> str:
    """The fields that say what the row is about (`id=jane@acme.com · name=Jane Doe`), once each."""
    seen: dict[str, str] = {}
    for result in row.outcome.get("actions", []):
        for name in KEY_FIELDS:
            value = (result.get("payload") or {}).get(name)
            if value not in (None, "") and name not in seen:
                seen[name] = f"{name}={_short(value)}"
    return " · ".join(seen.values())


def row_reason(row: PreviewRow) -> str:
    """Why the row failed (or was skipped): the first error, else the first skip reason."""
    if row.outcome.get("error"):
        return str(row.outcome["error"])
    results = row.outcome.get("actions", [])
    for result in results:
        if result.get("error"):
            return f"{result['action']}: {result['error']}"
    for result in results:
        reason = result.get("result", {}).get("reason") if isinstance(result.get("result"), dict) else None
        if result["status"] == "skipped" and reason:
            return f"{result['action']} skipped: {reason}"
    return ""


def row_skips(row: PreviewRow) -> bool:
    """Whether the row's reason is a skip, not a failure."""
    return not row.failed and any(r["status"] == "skipped" for r in row.outcome.get("actions", []))


def ordered(rows: list[PreviewRow], only_failures: bool = False) -> list[PreviewRow]:
    """Failures first (then the others, each group in table order); only failures if asked."""
    chosen = [row for row in rows if row.failed or not only_failures]
    return sorted(chosen, key=lambda row: (not row.failed, row.row))


_MARKS = {"success": "✓", "failed": "✗", "skipped": "–", "queued": "…"}


def _chip(action: str, status: str) -> str:
    """An action and its status, in the status's colours (and a mark, for those who see no colour)."""
    return (
        f'<span class="wb-chip wb-{html.escape(status)}" title="{html.escape(status)}" '
        f'style="background:{OUTCOME_TINTS.get(status, "#fff")};color:{outcome_colour(status)}">'
        f"{html.escape(action)} {_MARKS.get(status, html.escape(status))}</span>"
    )


def render_preview(rows: list[PreviewRow], actions: list[str], only_failures: bool = False) -> str:
    """A compact table: a line a row (number, status, actions, key fields, reason), failures first.

    Each line's key fields open to the row's whole outcome (every payload, as the sink gets it).
    """
    lines = []
    for row in ordered(rows, only_failures):
        results = row.outcome.get("actions", [])
        chips = "".join(_chip(r["action"], r["status"]) for r in results)
        whole = json.dumps({"body": row.body, "actions": results}, ensure_ascii=False, indent=2)
        fields = key_fields(row) or "(no payload)"
        reason = row_reason(row)
        colour = outcome_colour(row.status)
        lines.append(
            f'<tr data-row="{row.row}" class="wb-row wb-{html.escape(row.status)}">'
            f"<td>{row.row}</td>"
            f'<td style="color:{colour};font-weight:bold">{html.escape(row.status)}</td>'
            f"<td>{chips}</td>"
            f'<td title="{html.escape(fields)}"><details><summary>{html.escape(fields)}</summary>'
            f"<pre>{html.escape(whole)}</pre></details></td>"
            f'<td class="wb-reason" title="{html.escape(reason)}" style="color:{GREY if row_skips(row) else colour}">'
            f"{html.escape(reason)}</td>"
            "</tr>"
        )
    if not lines:
        what = "failure" if only_failures else "row"
        lines.append(f'<tr><td colspan="5">No {what} in the sample.</td></tr>')
    head = "<tr><th>row</th><th>status</th><th>actions, in execution order</th><th>key fields</th><th>reason</th></tr>"
    widths = "".join(f'<col style="width:{w}">' for w in ("44px", "86px", "24%", "34%", "auto"))
    return (
        f'{_CSS}<table class="wb-preview"><colgroup>{widths}</colgroup>'
        f"<thead>{head}</thead><tbody>{''.join(lines)}</tbody></table>"
    )


def render_counts(counts: list[MappingCount], rows: int, event: str) -> str:
    """Whole-table verdicts per action, with one sentence per problem."""
    if not counts:
        return f"<p>No mapping for <code>{html.escape(event)}</code> yet: add an action.</p>"
    parts = []
    if counts[0].invalid_rows:
        parts.append(
            f'<li class="wb-failure" style="color:{RED}">{counts[0].invalid_rows:,} of {rows:,} rows cannot '
            f"become a body ({html.escape(counts[0].invalid_example or '')}): they would be invalid</li>"
        )
    for i, count in enumerate(counts, start=1):
        if not count.active:
            parts.append(f"<li>{i}. {html.escape(count.action)}: inactive, skipped for every row</li>")
            continue
        ok = count.would_run - count.failed
        style = f"color:{RED if count.failed else GREEN}"
        summary = (
            f"{i}. <b>{html.escape(count.action)}</b>: <span style='{style}'>{count.failed:,} of {rows:,} rows "
            f"would fail</span>, {ok:,} would succeed, {count.skipped:,} skipped by conditions"
        )
        if count.event_rows != rows:
            summary += f" ({rows - count.event_rows:,} rows carry another event)"
        problems = "".join(f'<li class="wb-failure">{html.escape(m)}</li>' for m in count.messages())
        parts.append(f"<li>{summary}<ul>{problems}</ul></li>")
    return f'<ul class="wb-counts" style="list-style:none;padding-left:0">{"".join(parts)}</ul>'

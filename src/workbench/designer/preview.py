"""The preview of sample rows, built through the receiver's own path, and its HTML."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import SourceConfig
from ..engine import Engine, SourceEvent
from ..errors import CoercionError
from ..sinks import DryRunSink
from .counts import MappingCount

STATUS_COLOURS = {
    "success": "#e6f4ea",
    "skipped": "#f1f3f4",
    "failed": "#fce8e6",
    "queued": "#fef7e0",
    "invalid": "#fce8e6",
    "no_mapping": "#f1f3f4",
}


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


def _short(value: Any, limit: int = 80) -> str:
    if isinstance(value, dict) and len(json.dumps(value, ensure_ascii=False)) > limit:
        return "{…" + f"{len(value)} keys" + "}"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _payload_html(payload: Mapping[str, Any] | None) -> str:
    if not payload:
        return ""
    items = "".join(
        f"<div><b>{html.escape(k)}</b>: <code>{html.escape(_short(v))}</code></div>"
        for k, v in payload.items()
    )
    return f"<div>{items}</div>"


def render_preview(rows: list[PreviewRow], actions: list[str]) -> str:
    """A table: one line per row, one column per action (execution order); failures in red."""
    head = "".join(f"<th>{i + 1}. {html.escape(a)}</th>" for i, a in enumerate(actions))
    lines = []
    for row in rows:
        cells = []
        results = row.outcome.get("actions", [])
        if not results:
            reason = row.outcome.get("error") or row.status
            cells.append(
                f'<td colspan="{max(1, len(actions))}" class="wb-{row.status}" '
                f'style="background:{STATUS_COLOURS.get(row.status, "#fff")}">'
                f"<b>{html.escape(row.status)}</b>: {html.escape(reason)}</td>"
            )
        for result in results:
            status = result["status"]
            detail = ""
            if result.get("error"):
                detail = f'<div class="wb-error-text">{html.escape(result["error"])}</div>'
            elif status == "skipped" and isinstance(result.get("result"), dict):
                detail = f"<div>{html.escape(str(result['result'].get('reason', '')))}</div>"
            cells.append(
                f'<td class="wb-{status}" style="background:{STATUS_COLOURS.get(status, "#fff")};'
                f'vertical-align:top"><b>{html.escape(status)}</b>{detail}'
                f"{_payload_html(result.get('payload'))}</td>"
            )
        lines.append(f'<tr data-row="{row.row}"><td>{row.row}</td>{"".join(cells)}</tr>')
    return (
        '<table class="wb-preview" style="border-collapse:collapse;font-size:12px">'
        f"<thead><tr><th>row</th>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


def render_counts(counts: list[MappingCount], rows: int, event: str) -> str:
    """Whole-table verdicts per action, with one sentence per problem."""
    if not counts:
        return f"<p>No mapping for <code>{html.escape(event)}</code> yet: add an action.</p>"
    parts = []
    if counts[0].invalid_rows:
        parts.append(
            f'<li class="wb-failure" style="color:#b3261e">{counts[0].invalid_rows:,} of {rows:,} rows cannot '
            f"become a body ({html.escape(counts[0].invalid_example or '')}): they would be invalid</li>"
        )
    for i, count in enumerate(counts, start=1):
        if not count.active:
            parts.append(f"<li>{i}. {html.escape(count.action)}: inactive, skipped for every row</li>")
            continue
        ok = count.would_run - count.failed
        style = "color:#b3261e" if count.failed else "color:#137333"
        summary = (
            f"{i}. <b>{html.escape(count.action)}</b>: <span style='{style}'>{count.failed:,} of {rows:,} rows "
            f"would fail</span>, {ok:,} would succeed, {count.skipped:,} skipped by conditions"
        )
        if count.event_rows != rows:
            summary += f" ({rows - count.event_rows:,} rows carry another event)"
        problems = "".join(f'<li class="wb-failure">{html.escape(m)}</li>' for m in count.messages())
        parts.append(f"<li>{summary}<ul>{problems}</ul></li>")
    return f'<ul class="wb-counts" style="list-style:none;padding-left:0">{"".join(parts)}</ul>'

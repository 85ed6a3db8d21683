"""The event-log page: filters, search, keyset pages, one whole entry, replays one or in bulk.

Whatever a stored row holds, the page stays whole: lists show previews cut in SQL, JSON is
pretty-printed only when that works (raw text otherwise), and a page shows at most PAGE_LIMITS[-1]
rows.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import msgspec
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from ..colours import OUTCOME_COLOURS, OUTCOME_TINTS
from ..errors import NotFound, WorkbenchError
from ..store import EVENT_STATUSES, REPLAYABLE
from ..store.browse import ORIGINS, Cursor, Filters, browse, count_matching, ids_matching, whole_entry
from .forms import FORM_TOKEN_FIELD, form_token
from .runtime import runtime

event_page = Blueprint("event_page", __name__)

BASE = "/sources/<source>/<environment>"
PAGE_LIMITS = (25, 50, 100)
# Failed events one "replay all" click replays, and the seconds it may take, so it ends well
# inside a worker's timeout; the page says how many are left.
REPLAY_BATCH = 200
REPLAY_SECONDS = 20.0
FILTER_KEYS = ("status", "event", "origin", "since", "until", "q", "limit", "tz")
CURSOR_KEYS = ("before", "after")
SCRIPT = Path(__file__).resolve().parents[1] / "templates" / "events.js"
# Pretty-printing is skipped for texts this long: the whole entry shows them as received.
PRETTY_LIMIT = 1024 * 1024

# The page shows bodies Clay sent: only our own script, no frame around it (its replay buttons
# must not be clickable through another site), nothing loaded from elsewhere. `same-origin`
# referrers: with `no-referrer` Chromium sends `Origin: null` on the page's own form posts.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class BadFilter(WorkbenchError):
    http_status = 400
    status = "bad_request"


def pretty(value) -> str:
    """Indented JSON for the page; anything that cannot be (not JSON, too deep, too long) as is."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    if len(value) > PRETTY_LIMIT:
        return value
    try:
        return msgspec.json.format(value, indent=2)
    except Exception:
        pass
    try:  # control characters inside strings, as Clay's templating sends them
        return json.dumps(json.loads(value, strict=False), indent=2, ensure_ascii=False)
    except Exception:  # not JSON, nested deeper than the decoder goes, …: the text as it is
        return value


def _zone(args) -> ZoneInfo | None:
    name = args.get("tz", "").strip()
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return None  # an unknown zone: times stay in UTC


def _moment(args, name: str) -> datetime | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadFilter(f"{name} must be a time such as 2026-01-31T09:00, got {raw[:40]!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_zone(args) or UTC)
    return value.astimezone(UTC)


def _choice(args, name: str, allowed) -> str | None:
    value = args.get(name, "").strip()
    if value and value not in allowed:
        raise BadFilter(f"{name} must be one of {', '.join(allowed)}, got {value[:40]!r}")
    return value or None


def filters_from(args) -> Filters:
    return Filters(
        status=_choice(args, "status", EVENT_STATUSES),
        event=args.get("event", "").strip() or None,
        origin=_choice(args, "origin", ORIGINS),
        since=_moment(args, "since"),
        until=_moment(args, "until"),
        search=args.get("q", "").strip()[:500] or None,
    )


def _limit(args) -> int:
    raw = args.get("limit", "")
    try:
        value = int(raw) if raw else 50
    except ValueError:
        raise BadFilter(f"limit must be one of {PAGE_LIMITS}, got {raw[:40]!r}") from None
    return min(max(value, 1), PAGE_LIMITS[-1])


def _cursor(args, name: str) -> Cursor | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        return Cursor.parse(raw)
    except ValueError:
        raise BadFilter(f"{name} is not a page position of this log: {raw[:80]!r}") from None


def kept_args(args, keys=FILTER_KEYS) -> dict[str, str]:
    return {k: args[k] for k in keys if args.get(k)}


def page_url(source: str, environment: str, args: dict, **changes) -> str:
    query = {k: v for k, v in {**args, **changes}.items() if v not in (None, "")}
    return url_for("admin.event_page.page", source=source, environment=environment, **query)


def local_time(value: str | None, zone: ZoneInfo | None) -> str:
    """`2026-12-07 16:19:32` in the zone the browser said, else in UTC (the script redoes it)."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if zone is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _input_time(value: datetime | None, zone: ZoneInfo | None) -> str:
    if value is None:
        return ""
    return value.astimezone(zone or UTC).strftime("%Y-%m-%dT%H:%M:%S")


# The page's status labels in the workbench's outcome colours (failed red, skipped grey, …).
STATUS_COLOURS = [(status, OUTCOME_TINTS[status], colour) for status, colour in OUTCOME_COLOURS.items()]


def _render(template: str, **context):
    html = render_template(
        template,
        pretty=pretty,
        status_colours=STATUS_COLOURS,
        status_colours_by_name=OUTCOME_COLOURS,
        status_tints=OUTCOME_TINTS,
        **context,
    )
    return html, 200, PAGE_HEADERS


@event_page.get(BASE)
def page(source: str, environment: str):
    rt = runtime()
    rt.reload_configs()
    _, env = rt.environment(source, environment)
    args = request.args
    filters, limit, zone = filters_from(args), _limit(args), _zone(args)
    listed = browse(
        rt.store,
        source,
        environment,
        filters,
        limit,
        before=_cursor(args, "before"),
        after=_cursor(args, "after"),
    )
    kept = kept_args(args)
    confirm = args.get("confirm") == "replay-failed"
    failed_filters = Filters(**{**filters.__dict__, "status": "failed"})
    replayed_id = args.get("replayed")
    return _render(
        "events.html",
        source=source,
        environment=environment,
        page=listed,
        filters=filters,
        kept=kept,
        back=urlencode({**kept, **kept_args(args, CURSOR_KEYS)}),
        limit=limit,
        limits=sorted({*PAGE_LIMITS, limit}),
        since=_input_time(filters.since, zone),
        until=_input_time(filters.until, zone),
        zone=zone,
        local_time=local_time,
        page_url=lambda **changes: page_url(source, environment, kept, **changes),
        event_types=sorted({m.event for m in env.mappings} | ({filters.event} if filters.event else set())),
        statuses=EVENT_STATUSES,
        origins=ORIGINS,
        replayable=REPLAYABLE,
        replayed=whole_entry(rt.store, replayed_id) if replayed_id else None,
        bulk=_bulk_notice(args),
        confirm_count=count_matching(rt.store, source, environment, failed_filters) if confirm else None,
        form_token=form_token(current_app.config["ADMIN_TOKEN"], source, environment),
        form_token_field=FORM_TOKEN_FIELD,
        replay_batch=REPLAY_BATCH,
    )


def _bulk_notice(args) -> dict | None:
    if "bulk_replayed" not in args:
        return None
    return {
        k: args.get(k, type=int) or 0 for k in ("bulk_replayed", "bulk_processed", "bulk_failed", "bulk_left")
    }


@event_page.get(f"{BASE}/events/<event_id>")
def entry(source: str, environment: str, event_id: str):
    rt = runtime()
    found = whole_entry(rt.store, event_id)
    if found is None or found["source"] != source or found["environment"] != environment:
        raise NotFound(f"no event `{event_id}` in the log of {source}/{environment}")
    zone = _zone(request.args)
    return _render(
        "event.html",
        source=source,
        environment=environment,
        e=found,
        zone=zone,
        local_time=local_time,
        back=page_url(source, environment, kept_args(request.args, FILTER_KEYS + CURSOR_KEYS)),
    )


def _back() -> MultiDict:
    """The query of the page a form was sent from."""
    return MultiDict(parse_qsl(request.form.get("back", "")[:4000]))


def back_to_page(source: str, environment: str, **changes):
    """A 303 to the page with the filters and position the form was sent from."""
    back = _back()
    kept = kept_args(back, FILTER_KEYS + CURSOR_KEYS)
    return redirect(page_url(source, environment, kept, **changes), code=303)


@event_page.post(f"{BASE}/replay-failed")
def replay_failed(source: str, environment: str):
    """Replay the failed events matching the page's filters (an API client: the query's),
    oldest first, a batch at a time."""
    rt = runtime()
    rt.reload_configs()
    rt.environment(source, environment)
    from_page = request.form.get("from") == "page"
    filters = Filters(**{**filters_from(_back() if from_page else request.args).__dict__, "status": "failed"})
    started = time.monotonic()
    done = processed = still_failed = 0
    for event_id in ids_matching(rt.store, source, environment, filters, REPLAY_BATCH):
        if time.monotonic() - started > REPLAY_SECONDS:
            break
        after = rt.service.replay(event_id)
        done += 1
        status = (after or {}).get("status")
        processed += status == "processed"
        still_failed += status == "failed"
    left = count_matching(rt.store, source, environment, filters)
    counts = {"replayed": done, "processed": processed, "failed": still_failed, "left": left}
    if not from_page:
        return jsonify(counts)
    return back_to_page(
        source,
        environment,
        before=None,
        after=None,
        confirm=None,
        **{f"bulk_{k}": v for k, v in counts.items()},
    )


@event_page.get("/_workbench/events.js")
def script():
    return current_app.response_class(
        SCRIPT.read_text(), mimetype="text/javascript", headers={"X-Content-Type-Options": "nosniff"}
    )

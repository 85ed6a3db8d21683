"""Admin side: the event log (JSON and HTML), one event, replay and status, behind the admin token."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request

from ..errors import NotFound, WorkbenchError
from ..store import EVENT_STATUSES
from .forms import check_browser_request
from .page import back_to_page, event_page
from .runtime import runtime

admin = Blueprint("admin", __name__)
admin.register_blueprint(event_page)
# Pages a browser opens: a wrong or missing token gets the Basic challenge, so it asks for one.
BROWSER_PAGES = ("admin.event_page.page", "admin.event_page.entry")

BASE = "/sources/<source>/<environment>"
MAX_LIMIT = 1000
HOW_TO = (
    "send `Authorization: Bearer <admin token>`, or give the admin token as the password "
    "of HTTP Basic auth (any user name)"
)


class AdminAuthError(WorkbenchError):
    """Missing or wrong admin token."""

    http_status = 401
    status = "unauthorized"

    def __init__(self, message: str, challenge: str):
        super().__init__(message)
        self.headers = {"WWW-Authenticate": challenge}


class AdminDisabled(WorkbenchError):
    """No admin token is configured, so nobody gets in."""

    http_status = 403
    status = "admin_disabled"


class BadQuery(WorkbenchError):
    http_status = 400
    status = "bad_request"


@admin.after_request
def not_cached(response):
    """Admin answers hold rows' bodies (names, emails): no cache keeps a copy."""
    response.headers["Cache-Control"] = "no-store"
    return response


@admin.before_request
def require_admin_token():
    if request.endpoint == "admin.event_page.script":
        return  # the page's script holds nothing of the log
    token = current_app.config.get("ADMIN_TOKEN")
    if not token:
        raise AdminDisabled(
            "admin access is disabled because WORKBENCH_ADMIN_TOKEN is not set on this receiver; "
            "set it and restart the receiver to use the event log"
        )
    challenge = (
        'Basic realm="workbench admin", charset="UTF-8"'
        if request.endpoint in BROWSER_PAGES
        else 'Bearer realm="workbench admin"'
    )
    auth = request.authorization
    given = None
    if auth is not None:
        given = auth.token if auth.type == "bearer" else auth.password if auth.type == "basic" else None
    if not given:
        raise AdminAuthError(f"this admin endpoint needs the admin token; {HOW_TO}", challenge)
    if not hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass")
    ):
        raise AdminAuthError(f"the admin token is wrong; {HOW_TO}", challenge)
    if request.method == "POST":
        check_browser_request(token)


@admin.before_request
def settled():
    """Every event answered so far, by any receiver process, is in the log before it is read."""
    if request.endpoint != "admin.event_page.script":
        runtime().service.settle()


def _limit(default: int = 50) -> int:
    raw = request.args.get("limit", "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {raw[:40]!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadQuery(f"limit must be from 1 to {MAX_LIMIT}, got {value}")
    return value


def _since() -> datetime | None:
    raw = request.args.get("since", "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise BadQuery(
            f"since must be an ISO 8601 time such as 2026-01-31T09:00:00Z, got {raw[:40]!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _status() -> str | None:
    value = request.args.get("status", "").strip()
    if value and value not in EVENT_STATUSES:
        raise BadQuery(f"status must be one of {', '.join(EVENT_STATUSES)}, got {value[:40]!r}")
    return value or None


def _filters() -> dict:
    return {
        "status": _status(),
        "event": request.args.get("event") or None,
        "since": _since(),
        "limit": _limit(),
    }


def _event(source: str, environment: str, event_id: str) -> dict:
    entry = runtime().store.get_event(event_id)
    if entry is None or entry.get("source") != source or entry.get("environment") != environment:
        raise NotFound(f"no event `{event_id}` in the log of {source}/{environment}")
    return entry


@admin.get(f"{BASE}/logs")
def logs(source: str, environment: str):
    rt = runtime()
    rt.environment(source, environment)
    events = rt.store.list_events(source, environment, **_filters())
    return jsonify({"source": source, "environment": environment, "events": events})


@admin.get(f"{BASE}/logs/<event_id>")
def log_entry(source: str, environment: str, event_id: str):
    return jsonify(_event(source, environment, event_id))


@admin.post(f"{BASE}/logs/<event_id>/replay")
def replay(source: str, environment: str, event_id: str):
    rt = runtime()
    rt.reload_configs()
    _event(source, environment, event_id)
    entry = rt.service.replay(event_id)
    if request.form.get("from") == "page":
        return back_to_page(source, environment, replayed=event_id)
    return jsonify(entry)


@admin.get(f"{BASE}/status")
def status(source: str, environment: str):
    rt = runtime()
    _, env = rt.environment(source, environment)
    summary = rt.store.status_summary(source, environment)
    return jsonify(
        {
            "source": source,
            "environment": environment,
            "days": 30,
            "counts": summary.get("counts", {}),
            "last_received_at": summary.get("last_received_at"),
            "mappings": len(env.mappings),
            "active_mappings": sum(1 for m in env.mappings if m.active),
            "missing_secrets": env.missing_secrets(rt.environ),
        }
    )

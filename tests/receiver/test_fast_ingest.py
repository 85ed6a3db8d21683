"""The ingestion URL answered in front of Flask (`FastIngest`) answers every request exactly as
the Flask view behind it does: status line, headers and body (but for the event id)."""

from __future__ import annotations

import json
import uuid

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from workbench.receiver.ingest import FastIngest

from .conftest import SECRET, auth, build_app, lead


@pytest.fixture
def app(config_path, tmp_path):
    return build_app(config_path, f"sqlite:///{tmp_path / 'events.sqlite'}", MAX_CONTENT_LENGTH=64 * 1024)


def answer(wsgi_app, **request) -> tuple[str, list, dict | bytes]:
    """Status line, headers and body (JSON without the event id) of one request."""
    body = request.pop("body", None)
    if isinstance(body, dict):
        body = json.dumps(body)
    headers = {"Content-Type": "application/json", **request.pop("headers", auth())}
    environ = EnvironBuilder(
        path=request.pop("path", "/sources/clay/development"),
        method=request.pop("method", "POST"),
        headers=headers,
        data=body,
        **request,
    ).get_environ()
    app_iter, status, answered = run_wsgi_app(wsgi_app, environ, buffered=True)
    data = b"".join(app_iter)
    if answered.get("Content-Type") != "application/json":
        return status, list(answered), data
    reply = json.loads(data)
    reply.pop("id", None)
    return status, list(answered), reply


def row(**changes) -> dict:
    return lead(**{"email": f"{uuid.uuid4().hex[:10]}@acme.com", **changes})


def cut_short(body: bytes) -> dict:
    """A body that ends before its Content-Length."""
    return {"body": body[:-10], "headers": {**auth(), "Content-Length": str(len(body))}}


CASES = {
    "processed": lambda: {"body": row()},
    "trailing slash": lambda: {"path": "/sources/clay/development/", "body": row()},
    "query string": lambda: {"path": "/sources/clay/development?x=1", "body": row()},
    "no mapping": lambda: {"body": row(event="lead.unknown")},
    "failed": lambda: {"body": row(email="")},
    "invalid JSON": lambda: {"body": b'{"event": "lead.enriched", "email": }'},
    "empty body": lambda: {"body": b""},
    "wrong secret": lambda: {"body": row(), "headers": auth("not-" + SECRET)},
    "no Authorization": lambda: {"body": row(), "headers": {}},
    "unknown source": lambda: {"path": "/sources/hubspot/development", "body": row()},
    "unknown environment": lambda: {"path": "/sources/clay/staging", "body": row()},
    "not ASCII": lambda: {"path": "/sources/cläy/development", "body": row()},
    "double slash": lambda: {"path": "/sources//clay/development", "body": row()},
    "GET": lambda: {"method": "GET", "body": None},
    "too large": lambda: {"body": json.dumps(row(notes="x" * 70_000))},
    "cut short": lambda: cut_short(json.dumps(row()).encode()),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_answers_as_the_flask_view_does(app, case):
    assert isinstance(app.wsgi_app, FastIngest)
    flask_only = app.wsgi_app.wsgi_app
    request = case()
    assert answer(app.wsgi_app, **request) == answer(flask_only, **request)


def test_duplicates_are_answered_alike(app):
    body = row(row_id=uuid.uuid4().hex)
    first = answer(app.wsgi_app, path="/sources/clay/dedupe", body=body)
    assert first[2]["status"] == "processed"
    again = [answer(w, path="/sources/clay/dedupe", body=body) for w in (app.wsgi_app, app.wsgi_app.wsgi_app)]
    assert again[0] == again[1] and again[0][2]["status"] == "idempotent"


def test_a_crash_is_answered_by_the_apps_error_handler(app, monkeypatch):
    def crash(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.extensions["workbench"].service, "receive", crash)
    status, headers, reply = answer(app.wsgi_app, body=row())
    assert status == "500 INTERNAL SERVER ERROR"
    assert reply == {
        "status": "error",
        "error": "internal error (RuntimeError); the receiver's log has the details",
    }
    assert ("X-Content-Type-Options", "nosniff") in headers
    assert answer(app.wsgi_app.wsgi_app, body=row()) == (status, headers, reply)

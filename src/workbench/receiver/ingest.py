"""Ingestion: the URL the Clay HTTP API column POSTs rows to.

Rows come in fast and the receiver's own work on one is small, so Flask's machinery around each
request (a request context, URL matching, a response object, the after-request hooks) costs about
as much as the rest of the receiver's work together. `FastIngest`, in front of the app, answers a
plain row itself, as the view below would, byte for byte; anything else (another URL or method, a
chunked or oversized body, a body cut short) goes to Flask, and so does any error, which Flask's
handlers answer as they always do.
"""

from __future__ import annotations

import io
import re

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES

from ..errors import IncompleteBody
from ..jsontext import json_text
from .runtime import runtime

ingest = Blueprint("ingest", __name__)
# On every answer of the receiver (the app adds it to Flask's; `FastIngest` to its own).
NO_SNIFF = ("X-Content-Type-Options", "nosniff")


def _headers(environ: dict) -> dict[str, str]:
    """The request's headers by lower-case name, straight from the WSGI environ (the server has
    already joined repeated headers)."""
    headers = {
        key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
    }
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        value = environ.get(key)
        if value:
            headers[name] = value
    return headers


def _refuse_a_cut_stream(body: bytes) -> None:
    """A body sent without Content-Length (chunked) is read only up to MAX_CONTENT_LENGTH, and
    Werkzeug then stops without a word: the row would be logged cut short, as invalid JSON.
    If anything is left after the limit, the body was too large."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    cut = limit and request.content_length is None and len(body) >= limit
    if cut and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def _refuse_a_short_body(body: bytes) -> None:
    """A body shorter than its Content-Length (the client stopped sending, or half-closed) is
    not the row Clay meant to send: refused before it is verified or stored."""
    length = request.content_length
    if length is not None and len(body) < length:
        raise IncompleteBody(
            f"the body ended after {len(body)} of the {length} bytes its Content-Length announced; "
            "nothing was stored: send the whole row again"
        )


@ingest.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@ingest.post("/sources/<source>/<environment>", strict_slashes=False)
def receive(source: str, environment: str):
    """Verify, log, map and apply one row; the answer says exactly what happened."""
    rt = runtime()
    rt.reload_configs()
    body = request.get_data(cache=False)
    _refuse_a_cut_stream(body)
    _refuse_a_short_body(body)
    reply = rt.service.receive(source, environment, _headers(request.environ), body)
    return current_app.response_class(
        _reply_text(reply.body), status=reply.http_status, mimetype="application/json"
    )


def _reply_text(body: dict) -> str:
    # The reply is plain JSON data holding whole payloads: encoded by msgspec, not json.dumps.
    return json_text(body) + "\n"


# The ingestion route as Werkzeug matches it (`<source>` and `<environment>` hold no slash, and a
# trailing slash is allowed); a path that is not plain ASCII goes to Flask, which decodes it.
_ROUTE = re.compile(r"/sources/([^/]+)/([^/]+)/?")
_STATUS_LINES = {code: f"{code} {text.upper()}" for code, text in HTTP_STATUS_CODES.items()}


class FastIngest:
    """WSGI middleware answering a plain POST of a row (a Content-Length within the app's limit)
    without Flask's per-request machinery; everything else goes to `wsgi_app`, Flask's."""

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response):
        path = environ.get("PATH_INFO", "")
        route = _ROUTE.fullmatch(path) if environ.get("REQUEST_METHOD") == "POST" else None
        length = environ.get("CONTENT_LENGTH")
        if (
            route is None
            or not path.isascii()
            or not length
            or not length.isdigit()
            or "HTTP_TRANSFER_ENCODING" in environ
        ):
            return self.wsgi_app(environ, start_response)
        size = int(length)
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if limit is not None and size > limit:
            return self.wsgi_app(environ, start_response)
        try:
            body = environ["wsgi.input"].read(size)
            if len(body) < size:  # cut short: Flask refuses it, reading the same bytes
                environ["wsgi.input"] = io.BytesIO(body)
                return self.wsgi_app(environ, start_response)
            rt = self.app.extensions["workbench"]
            rt.reload_configs()
            reply = rt.service.receive(route[1], route[2], _headers(environ), body)
        except Exception as exc:
            return self._answer_error(environ, start_response, exc)
        data = _reply_text(reply.body).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            NO_SNIFF,
        ]
        start_response(_STATUS_LINES[reply.http_status], headers)
        return [data]

    def _answer_error(self, environ: dict, start_response, exc: Exception):
        """The answer Flask gives when the view raises `exc` (called while it is handled)."""
        app = self.app
        with app.request_context(environ):
            try:
                rv = app.handle_user_exception(exc)
            except Exception as unhandled:
                rv = app.handle_exception(unhandled)
            response = app.finalize_request(rv)
            return response(environ, start_response)

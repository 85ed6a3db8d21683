"""Ingestion: the URL the Clay HTTP API column POSTs rows to."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import IncompleteBody
from ..jsontext import json_text
from .runtime import runtime

ingest = Blueprint("ingest", __name__)


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
    # The reply is plain JSON data holding whole payloads: encoded by msgspec, not json.dumps.
    return current_app.response_class(
        json_text(reply.body) + "\n", status=reply.http_status, mimetype="application/json"
    )

"""Ingestion: the URL the Clay HTTP API column POSTs rows to."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from ..store.fast import json_text
from .app import runtime

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


@ingest.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@ingest.post("/sources/<source>/<environment>", strict_slashes=False)
def receive(source: str, environment: str):
    """Verify, log, map and apply one row; the answer says exactly what happened."""
    rt = runtime()
    rt.reload_configs()
    body = request.get_data(cache=False)
    reply = rt.service.receive(source, environment, _headers(request.environ), body)
    # The reply is plain JSON data holding whole payloads: encoded by msgspec, not json.dumps.
    return current_app.response_class(
        json_text(reply.body) + "\n", status=reply.http_status, mimetype="application/json"
    )

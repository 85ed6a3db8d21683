"""Ingestion: the URL the Clay HTTP API column POSTs rows to."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from ..store.fast import json_text
from .app import runtime

ingest = Blueprint("ingest", __name__)


@ingest.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@ingest.post("/sources/<source>/<environment>", strict_slashes=False)
def receive(source: str, environment: str):
    """Verify, log, map and apply one row; the answer says exactly what happened."""
    rt = runtime()
    rt.reload_configs()
    body = request.get_data(cache=False)
    reply = rt.service.receive(source, environment, list(request.headers.items()), body)
    # The reply is plain JSON data holding whole payloads: encoded by msgspec, not json.dumps.
    return current_app.response_class(
        json_text(reply.body) + "\n", status=reply.http_status, mimetype="application/json"
    )

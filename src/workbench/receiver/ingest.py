"""Ingestion: the URL the Clay HTTP API column POSTs rows to."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

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
    return jsonify(reply.body), reply.http_status

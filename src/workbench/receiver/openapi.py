"""`GET /openapi.json`: the receiver's ingestion and admin JSON API as an OpenAPI 3.0 document.

Made from the configs the receiver serves (its sources and environments are the path parameters'
values), so a client generator or a fuzzer reaches the real operations. The HTML event-log page
is left out: it is for browsers.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..store import EVENT_STATUSES
from ..store.browse import ORIGINS
from .page import REPLAY_BATCH
from .runtime import runtime

openapi = Blueprint("openapi", __name__)

ACTION_STATUSES = ["success", "skipped", "failed", "queued"]
OUTCOME_STATUSES = ["processed", "idempotent", "no_mapping", "queued", "invalid", "failed"]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    said = {
        400: "the request is malformed; `error` says how",
        401: "missing or wrong `Authorization`",
        403: "admin access is off (no WORKBENCH_ADMIN_TOKEN) or a browser form came from another site",
        404: "unknown source, environment or event",
        409: "the entry stands for a batch of backfilled rows: run that backfill again instead",
        405: "another method than the ones documented",
        408: "the body took too long to arrive; nothing was stored",
        413: "the body is over the receiver's limit (5 MiB by default)",
        503: "the event-log database is unavailable; try again (`Retry-After`)",
    }
    return {str(code): _json(_ref("Error"), said[code]) for code in codes}


SCHEMAS = {
    "BulkReplay": {
        "type": "object",
        "required": ["replayed", "processed", "failed", "left"],
        "properties": {
            name: {"type": "integer", "minimum": 0} for name in ("replayed", "processed", "failed", "left")
        },
    },
    "Error": {
        "type": "object",
        "required": ["status", "error"],
        "properties": {"status": {"type": "string"}, "error": {"type": "string"}},
    },
    "ActionOutcome": {
        "type": "object",
        "required": ["action", "status", "payload"],
        "properties": {
            "action": {"type": "string"},
            "status": {"type": "string", "enum": ACTION_STATUSES},
            "payload": {"type": "object", "nullable": True},
            "result": {},
            "error": {"type": "string"},
        },
    },
    "Outcome": {
        "type": "object",
        "required": ["id", "status", "event", "actions"],
        "properties": {
            "id": {"type": "string", "pattern": "^evt_"},
            "status": {"type": "string", "enum": [*OUTCOME_STATUSES, "unavailable"]},
            "event": {"type": "string", "nullable": True},
            "error": {"type": "string"},
            "idempotency": {"type": "string"},
            "actions": {"type": "array", "items": _ref("ActionOutcome")},
        },
    },
    "EventSummary": {
        "type": "object",
        "required": ["id", "status", "event", "received_at"],
        "properties": {
            "id": {"type": "string", "pattern": "^evt_"},
            "status": {"type": "string", "enum": list(EVENT_STATUSES)},
            "event": {"type": "string", "nullable": True},
            "received_at": {"type": "string", "format": "date-time"},
        },
    },
    "EventLog": {
        "type": "object",
        "required": ["source", "environment", "events"],
        "properties": {
            "source": {"type": "string"},
            "environment": {"type": "string"},
            "events": {"type": "array", "items": _ref("EventSummary")},
        },
    },
    "LoggedAction": {
        "type": "object",
        "required": ["action", "status", "payload", "result", "error"],
        "properties": {
            "action": {"type": "string"},
            "status": {"type": "string", "enum": ACTION_STATUSES},
            "payload": {"type": "object", "nullable": True},
            "params": {},
            "result": {},
            "error": {"type": "string", "nullable": True},
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "received_at", "source", "environment", "status", "body", "headers", "actions"],
        "properties": {
            "id": {"type": "string", "pattern": "^evt_"},
            "received_at": {"type": "string", "format": "date-time"},
            "source": {"type": "string"},
            "environment": {"type": "string"},
            "origin": {"type": "string", "enum": ["live", "backfill", "replay"]},
            "event": {"type": "string", "nullable": True},
            "status": {"type": "string", "enum": list(EVENT_STATUSES)},
            "body": {"type": "string", "description": "the body as received (undecodable bytes replaced)"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "idempotency_key": {"type": "string", "nullable": True},
            "error": {"type": "string", "nullable": True},
            "actions": {"type": "array", "items": _ref("LoggedAction")},
        },
    },
    "Status": {
        "type": "object",
        "required": ["source", "environment", "days", "counts", "mappings"],
        "properties": {
            "source": {"type": "string"},
            "environment": {"type": "string"},
            "days": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "last_received_at": {"type": "string", "format": "date-time", "nullable": True},
            "mappings": {"type": "integer"},
            "active_mappings": {"type": "integer"},
            "missing_secrets": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def document(sources: dict[str, list[str]]) -> dict:
    """The OpenAPI document for these sources and their environments."""
    environments = sorted({env for envs in sources.values() for env in envs})
    where = [
        {
            "name": "source",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": sorted(sources)},
        },
        {
            "name": "environment",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": environments},
        },
    ]
    event_id = {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}
    admin = [{"adminToken": []}]
    base = "/sources/{source}/{environment}"
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Clay source receiver",
            "version": "1",
            "description": "Clay rows in, Knock actions out; every verified row is logged.",
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Whether the receiver is up",
                    "security": [],
                    "responses": {"200": _json({"type": "object", "required": ["status"]}, "up")},
                }
            },
            base: {
                "post": {
                    "summary": "Receive one row (what Clay's HTTP API column POSTs)",
                    "parameters": where,
                    "security": [{"signingSecret": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["event"],
                                    "properties": {"event": {"type": "string"}},
                                    "additionalProperties": True,
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(_ref("Outcome"), "processed, idempotent or no_mapping"),
                        "202": _json(_ref("Outcome"), "queued: an action will be retried"),
                        "400": _json(
                            {"anyOf": [_ref("Outcome"), _ref("Error")]},
                            "invalid body (logged), or a body shorter than its Content-Length (not stored)",
                        ),
                        "422": _json(_ref("Outcome"), "an action failed; `actions[].error` says why"),
                        **_errors(401, 404, 408, 413),
                        "503": _json({"anyOf": [_ref("Outcome"), _ref("Error")]}, "database unavailable"),
                    },
                }
            },
            f"{base}/logs": {
                "get": {
                    "summary": "The event log, newest first",
                    "parameters": [
                        *where,
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "enum": list(EVENT_STATUSES)},
                        },
                        {"name": "event", "in": "query", "schema": {"type": "string"}},
                        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                    ],
                    "security": admin,
                    "responses": {
                        "200": _json(_ref("EventLog"), "events"),
                        **_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            f"{base}/logs/{{event_id}}": {
                "get": {
                    "summary": "One whole entry",
                    "parameters": [*where, event_id],
                    "security": admin,
                    "responses": {"200": _json(_ref("Event"), "the entry"), **_errors(401, 403, 404, 503)},
                }
            },
            f"{base}/logs/{{event_id}}/replay": {
                "post": {
                    "summary": "Run again the actions of an event that did not succeed",
                    "parameters": [*where, event_id],
                    "security": admin,
                    "responses": {
                        "200": _json(_ref("Event"), "the entry after the replay"),
                        **_errors(401, 403, 404, 409, 503),
                    },
                }
            },
            f"{base}/replay-failed": {
                "post": {
                    "summary": "Replay the failed events that match the filters, oldest first, "
                    f"up to {REPLAY_BATCH} a request",
                    "parameters": [
                        *where,
                        {"name": "event", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "origin",
                            "in": "query",
                            "schema": {"type": "string", "enum": list(ORIGINS)},
                        },
                        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "q", "in": "query", "schema": {"type": "string"}},
                    ],
                    "security": admin,
                    "responses": {
                        "200": _json(_ref("BulkReplay"), "what the replays did, and how many still match"),
                        **_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            f"{base}/status": {
                "get": {
                    "summary": "Events by status over 30 days, and the mappings",
                    "parameters": where,
                    "security": admin,
                    "responses": {"200": _json(_ref("Status"), "counts"), **_errors(401, 403, 404, 503)},
                }
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "signingSecret": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "one of the environment's signing secrets",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "WORKBENCH_ADMIN_TOKEN (also accepted as the password of HTTP Basic auth)",
                },
            },
        },
    }


@openapi.get("/openapi.json")
def openapi_json():
    rt = runtime()
    rt.reload_configs()
    return jsonify(document({config.source: list(config.environments) for config in rt.configs}))

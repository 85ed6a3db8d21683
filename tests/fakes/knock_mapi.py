"""A fake of Knock's management API (sources, rehearse, logs, providers) on loopback, as strict as its spec.

Every request is checked against `specs/mapi-sources-openapi.yml` (Knock's own description):
the operation must exist, its query parameters must be the spec's (required ones present, no
others), and its JSON body must validate against the operation's request schema. A request that
does not is refused with 400 and recorded in `violations`. Every answer the fake gives is checked
against the operation's response schema too, so the fake cannot drift from the spec either.

Sources hold settings and mappings per environment. PUT upserts one environment: given settings
replace those held, a given mapping list replaces the held one, and a workflow trigger mapping
must be sent marked deleted before it can go (as the spec says); it then stays, marked deleted.
Rehearse runs the payload through the held mappings with its own small resolver (dot paths, the
fixed options of Knock's actions) and writes a log, which `GET …/logs?include=actions` shows.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from flask import Flask, jsonify, request

from tests.fakes.loopback import LoopbackServer

SERVICE_TOKEN = "knock_st_fake_service_token"
SPEC_PATH = Path(__file__).with_name("specs") / "mapi-sources-openapi.yml"
ENVIRONMENTS = ("development", "staging", "production")
# Over the whole test run: what the contract summary line reports (added up as each fake stops).
CONTRACT: Counter = Counter()

# Knock's list (sources-overview.mdx), written out here rather than taken from the workbench, whose
# rehearse the fake's is compared with.
EXECUTION_ORDER = (
    "users_identify",
    "users_delete",
    "objects_set",
    "objects_delete",
    "tenants_set",
    "tenants_delete",
    "objects_subscribe",
    "objects_unsubscribe",
    "audiences_add_member",
    "audiences_remove_member",
    "workflows_trigger",
)
OPTIONS = {"workflows_trigger": {"key"}, "audiences_add_member": {"key"}, "audiences_remove_member": {"key"}}
OPTIONS.update(
    {a: {"collection"} for a in ("objects_set", "objects_delete", "objects_subscribe", "objects_unsubscribe")}
)
REQUIRED = {
    "users_identify": ("id",),
    "users_delete": ("id",),
    "objects_set": ("collection", "id"),
    "objects_delete": ("collection", "id"),
    "tenants_set": ("id",),
    "tenants_delete": ("id",),
    "objects_subscribe": ("collection", "id", "recipients"),
    "objects_unsubscribe": ("collection", "id", "recipients"),
    "audiences_add_member": ("key", "users"),
    "audiences_remove_member": ("key", "users"),
    "workflows_trigger": ("key", "recipients"),
}
CLAY_PROVIDER = {
    "key": "clay",
    "version": "1.0.0",
    "provider": {
        "name": "Clay",
        "description": "Sync enriched lead and contact data from Clay tables into Knock.",
        "categories": ["CRM"],
        "website_url": "https://www.clay.com",
        "webhook_docs_url": "https://university.clay.com/docs/http-api-integration-overview",
    },
    "default_settings": {
        "enforce_verification": False,
        "event_type_path": "body.event",
        "idempotency_key_path": None,
    },
    "default_action_mappings": [
        {
            "event_type": "lead.enriched",
            "action_type": "users_identify",
            "action_parameters": {
                "id": "body.email",
                "name": "body.full_name",
                "email": "body.email",
                "phone_number": "body.phone_number",
                "avatar": "body.avatar_url",
                "properties": "body",
            },
        }
    ],
}


def _openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: `nullable` becomes a null type, vendor keys go."""
    if isinstance(node, list):
        return [_openapi_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _openapi_to_json_schema(v) for k, v in node.items() if not k.startswith("x-") and k != "example"
    }
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        elif "oneOf" in out:
            out = {"anyOf": [{"type": "null"}, {k: v for k, v in out.items() if k != "description"}]}
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern
    parameters: tuple[dict, ...]
    request_schema: dict | None
    response_schema: dict | None


@functools.cache
def load_operations(path: Path = SPEC_PATH) -> tuple[Operation, ...]:
    spec = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    components = {"components": _openapi_to_json_schema(spec["components"])}
    operations = []
    for template, item in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")
        for method, op in item.items():
            body = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}).get(
                "schema"
            )
            answer = (
                ((op["responses"].get("200") or {}).get("content") or {})
                .get("application/json", {})
                .get("schema")
            )
            operations.append(
                Operation(
                    method.upper(),
                    template,
                    pattern,
                    tuple(op.get("parameters", [])),
                    {**_openapi_to_json_schema(body), **components} if body else None,
                    {**_openapi_to_json_schema(answer), **components} if answer else None,
                )
            )
    return tuple(operations)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Fault:
    status: int
    retry_after: str | None = None
    method: str | None = None
    path: str | None = None


@dataclass
class FakeMapiState:
    sources: dict[str, dict] = field(default_factory=dict)
    logs: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)


def _first_error(validator_schema: dict, value: Any) -> str | None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(validator_schema).iter_errors(value)
    )
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
    return f"{where}: {error.message}"


def _resolve(path: str, context: dict) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def create_fake_mapi(token: str = SERVICE_TOKEN):
    app = Flask("fake_knock_mapi")
    state = FakeMapiState()
    lock = threading.Lock()
    operations = load_operations()
    ids = itertools.count(1)

    def refuse(reason: str, status: int = 400):
        with lock:
            state.violations.append(f"{request.method} {request.full_path}: {reason}")
        return jsonify({"code": "invalid_request", "message": reason}), status

    @app.before_request
    def check_request():
        with lock:
            state.requests.append((request.method, request.path, request.get_json(silent=True)))
            fault = next(
                (
                    f
                    for f in state.faults
                    if (f.method in (None, request.method))
                    and (f.path is None or request.path.startswith(f.path))
                ),
                None,
            )
            if fault is not None:
                state.faults.remove(fault)
        if request.headers.get("Authorization") != f"Bearer {token}":
            return jsonify({"code": "unauthenticated", "message": "The service token is invalid"}), 401
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return jsonify({"code": "scripted", "message": f"scripted {fault.status}"}), fault.status, headers
        op = next(
            (o for o in operations if o.method == request.method and o.pattern.match(request.path)), None
        )
        if op is None:
            return refuse(f"no operation {request.method} {request.path} in the spec", 404)
        request.environ["fake.operation"] = op
        known = {p["name"] for p in op.parameters if p["in"] == "query"}
        for name in request.args:
            if name not in known:
                return refuse(
                    f"query parameter `{name}` is not one of the operation's ({', '.join(sorted(known))})"
                )
        for param in op.parameters:
            if param["in"] == "query" and param.get("required") and param["name"] not in request.args:
                return refuse(f"required query parameter `{param['name']}` is missing")
            schema = param.get("schema", {})
            if param["in"] == "query" and param["name"] in request.args:
                values = request.args.getlist(param["name"])
                if schema.get("type") == "array":
                    allowed = (schema.get("items") or {}).get("enum")
                    bad = [v for v in values if allowed and v not in allowed]
                    if bad:
                        return refuse(f"`{param['name']}` takes {allowed}, not {bad}")
                elif schema.get("type") == "integer" and not re.fullmatch(r"-?\d+", values[0]):
                    return refuse(f"`{param['name']}` is an integer")
                elif schema.get("type") == "boolean" and values[0] not in ("true", "false"):
                    return refuse(f"`{param['name']}` is true or false")
        if request.method in ("PUT", "POST", "PATCH"):
            if not request.is_json:
                return refuse("the body must be application/json")
            body = request.get_json(silent=True)
            if op.request_schema is not None:
                problem = _first_error(op.request_schema, body)
                if problem:
                    return refuse(f"body does not match the spec's request schema: {problem}")
        with lock:
            state.counts["checked"] += 1
        return None

    @app.after_request
    def check_answer(response):
        op = request.environ.get("fake.operation")
        if op is not None and response.status_code == 200 and op.response_schema is not None:
            problem = _first_error(op.response_schema, response.get_json(silent=True))
            with lock:
                state.counts["answers"] += 1
                if problem:
                    state.violations.append(
                        f"the fake's own answer to {request.method} {request.path}: {problem}"
                    )
        return response

    def environment() -> str | None:
        env = request.args.get("environment")
        return env if env in ENVIRONMENTS else None

    def unknown_environment():
        return jsonify(
            {
                "code": "resource_missing",
                "message": f"environment {request.args.get('environment')!r} not found",
            }
        ), 404

    def view(source: dict, env: str) -> dict:
        held = source["environment_settings"].get(env) or {
            "settings": {},
            "mappings": [],
            "updated_at": source["created_at"],
        }
        settings = {
            "endpoint": f"https://api.knock.app/integrations/receive/src_{source['key']}_{env}",
            **held["settings"],
        }
        out = {k: v for k, v in source.items() if k != "environment_settings"}
        out["environment_settings"] = {env: {**copy.deepcopy(held), "settings": copy.deepcopy(settings)}}
        return out

    @app.get("/v1/sources/<key>")
    def get_source(key):
        env = environment()
        if env is None:
            return unknown_environment()
        with lock:
            source = state.sources.get(key)
            if source is None:
                return jsonify({"code": "resource_missing", "message": f"source {key!r} not found"}), 404
            return jsonify(view(source, env))

    @app.put("/v1/sources/<key>")
    def put_source(key):
        env = environment()
        if env is None:
            return unknown_environment()
        given = request.get_json()["source"]
        settings_given = given.get("environment_settings") or {}
        if set(settings_given) - {env}:
            message = f"environment_settings may hold only the environment being set ({env})"
            return jsonify({"code": "invalid_params", "message": message}), 422
        now = _now()
        with lock:
            source = state.sources.get(key) or {
                "key": key,
                "name": given["name"],
                "created_at": now,
                "updated_at": now,
                "environment_settings": {},
            }
            held = copy.deepcopy(source["environment_settings"].get(env) or {"settings": {}, "mappings": []})
            if env in settings_given:
                wanted = settings_given[env]
                held["settings"].update(copy.deepcopy(wanted.get("settings") or {}))
                if "mappings" in wanted:
                    mappings = []
                    for m in wanted["mappings"]:
                        if m.get("is_deleted") and m["action_type"] != "workflows_trigger":
                            continue
                        before = next(
                            (
                                h
                                for h in held["mappings"]
                                if (h["event_type"], h["action_type"], h["action_parameters"])
                                == (m["event_type"], m["action_type"], m.get("action_parameters"))
                            ),
                            None,
                        )
                        mappings.append(
                            {
                                "event_type": m["event_type"],
                                "action_type": m["action_type"],
                                "action_parameters": copy.deepcopy(m.get("action_parameters")),
                                "active": m.get("active", True),
                                "is_deleted": bool(m.get("is_deleted", False)),
                                "created_at": before["created_at"] if before else now,
                                "updated_at": now,
                            }
                        )
                    # A trigger mapping is the trigger of one workflow: known by its event and workflow key.
                    kept = {
                        (m["event_type"], (m["action_parameters"] or {}).get("key"))
                        for m in mappings
                        if m["action_type"] == "workflows_trigger"
                    }
                    for h in held["mappings"]:
                        live = h["action_type"] == "workflows_trigger" and not h["is_deleted"]
                        if live and (h["event_type"], (h["action_parameters"] or {}).get("key")) not in kept:
                            message = (
                                f"workflow trigger mapping for {h['event_type']} must be marked deleted "
                                "before it can be removed"
                            )
                            return jsonify({"code": "invalid_params", "message": message}), 422
                    held["mappings"] = mappings
            held["updated_at"] = now
            source["environment_settings"][env] = held
            for name in ("name", "description", "custom_image_url"):
                if name in given:
                    source[name] = given[name]
            source["updated_at"] = now
            state.sources[key] = source
            return jsonify({"source": view(source, env)})

    @app.post("/v1/sources/<key>/rehearse")
    def rehearse(key):
        env = environment()
        if env is None:
            return unknown_environment()
        if env == "production":
            message = "rehearse cannot be run in production environments"
            return jsonify({"code": "invalid_params", "message": message}), 422
        payload = (request.get_json(silent=True) or {}).get("payload") or {}
        with lock:
            source = state.sources.get(key)
            if source is None:
                return jsonify({"code": "resource_missing", "message": f"source {key!r} not found"}), 404
            held = source["environment_settings"].get(env) or {"settings": {}, "mappings": []}
            event = _resolve(held["settings"].get("event_type_path") or "body.event", payload)
            chosen = [
                m
                for m in held["mappings"]
                if m["event_type"] == event
                and m["active"]
                and not m["is_deleted"]
                and m["action_type"] in EXECUTION_ORDER
            ]
            chosen.sort(key=lambda m: EXECUTION_ORDER.index(m["action_type"]))
            actions = []
            for m in chosen:
                resolved = {}
                for name, value in (m["action_parameters"] or {}).items():
                    if value is None:
                        continue
                    resolved[name] = (
                        value if name in OPTIONS.get(m["action_type"], ()) else _resolve(value, payload)
                    )
                missing = [p for p in REQUIRED[m["action_type"]] if resolved.get(p) in (None, "")]
                actions.append(
                    {
                        "id": f"action_log_{next(ids)}",
                        "action_type": m["action_type"],
                        "action_parameters": copy.deepcopy(m["action_parameters"]),
                        "action_payload": {k: v for k, v in resolved.items() if v is not None},
                        "action_status": "error" if missing else "success",
                        "action_result": {"error": f"missing required {', '.join(missing)}"}
                        if missing
                        else {},
                        "inserted_at": _now(),
                    }
                )
            log = {
                "id": f"log_{next(ids)}",
                "event": event if isinstance(event, str) else "",
                "data": payload.get("body") if isinstance(payload.get("body"), dict) else None,
                "inserted_at": _now(),
                "preprocess_output": None,
                "source": "rehearsal",
                "verification_status": None,
                "actions": actions,
            }
            state.logs.setdefault((key, env), []).insert(0, log)
        failed = sum(a["action_status"] != "success" for a in actions)
        return jsonify(
            {
                "log_id": log["id"],
                "status": "error" if failed else "ok",
                "errors": None,
                "action_logs_count": len(actions),
                "successful_action_logs_count": len(actions) - failed,
                "failed_action_logs_count": failed,
            }
        )

    @app.get("/v1/sources/<key>/logs")
    def logs(key):
        env = environment()
        if env is None:
            return unknown_environment()
        include = request.args.getlist("include")
        with lock:
            entries = [
                {k: v for k, v in log.items() if k != "actions" or "actions" in include}
                for log in state.logs.get((key, env), [])
                if request.args.get("id") in (None, log["id"])
                and request.args.get("event") in (None, log["event"])
            ]
        limit = int(request.args.get("limit", 50))
        return jsonify(
            {"entries": entries[:limit], "page_info": {"after": None, "before": None, "page_size": limit}}
        )

    @app.get("/v1/sources/<key>/events")
    def events(key):
        env = environment()
        if env is None:
            return unknown_environment()
        with lock:
            seen = {}
            for log in state.logs.get((key, env), []):
                seen.setdefault(log["event"], log["inserted_at"])
        return jsonify({"entries": [{"event": e, "last_received_at": t} for e, t in seen.items()]})

    @app.get("/v1/source_providers/<key>")
    def provider(key):
        if key != "clay":
            return jsonify({"code": "resource_missing", "message": f"source provider {key!r} not found"}), 404
        answer = copy.deepcopy(CLAY_PROVIDER)
        if "default_action_mappings" not in request.args.getlist("include"):
            del answer["default_action_mappings"]
        return jsonify(answer)

    return app, state, lock


class FakeKnockMapi:
    """The fake served on a loopback thread; `url` is its base URL, `stop()` ends it."""

    def __init__(self, token: str = SERVICE_TOKEN):
        self.token = token
        self.app, self.state, self._lock = create_fake_mapi(token)
        self._server = LoopbackServer(self.app, "fake-mapi")
        self.url = self._server.url

    def stop(self) -> None:
        self._server.stop()

    def finish(self) -> list[str]:
        """Stop, add this fake's figures to the run's contract line, and return its violations."""
        self.stop()
        CONTRACT.update(self.state.counts)
        CONTRACT["refused"] += len(self.state.violations)
        return self.state.violations

    def fail(
        self, status: int, times: int = 1, *, retry_after: str | None = None, method=None, path=None
    ) -> None:
        with self._lock:
            self.state.faults.extend(Fault(status, retry_after, method, path) for _ in range(times))

    def set_source(
        self, key: str, environment: str, settings: dict, mappings: list[dict], name: str = "Clay"
    ) -> None:
        """Set one environment of a source, with `settings` and `mappings` in Knock's format."""
        environment_settings = {environment: {"settings": settings, "mappings": mappings}}
        self.put_source(
            key, environment, {"source": {"name": name, "environment_settings": environment_settings}}
        )

    def put_source(self, key: str, environment: str, body: dict) -> None:
        """Set a source as Knock's dashboard would (through the same checked PUT)."""
        import httpx

        response = httpx.put(
            f"{self.url}/v1/sources/{key}",
            params={"environment": environment},
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text

    def requests(self, method: str | None = None) -> list[tuple[str, str, Any]]:
        with self._lock:
            return [r for r in self.state.requests if method in (None, r[0])]


@pytest.fixture
def fake_mapi():
    """A fake Knock management API for one test; the test fails if any request broke the spec."""
    fake = FakeKnockMapi()
    yield fake
    violations = fake.finish()
    assert not violations, "requests or answers outside Knock's spec:\n" + "\n".join(violations)


def contract_line() -> str | None:
    if not CONTRACT["checked"]:
        return None
    return (
        f"Knock management API contract: {CONTRACT['checked']} requests checked against mapi-openapi.yml, "
        f"{CONTRACT['answers']} answers checked, {CONTRACT['refused']} refused"
    )

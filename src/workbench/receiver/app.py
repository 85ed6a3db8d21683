"""The Flask app factory: one `SourceService` per process, JSON errors everywhere."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..config import ConfigSet
from ..errors import StoreUnavailable, WorkbenchError
from ..receiving import build_service
from ..store import DEFAULT_STORE_URL, Store
from .admin import admin
from .ingest import NO_SNIFF, FastIngest, ingest
from .openapi import openapi
from .retrying import RetryWorker
from .runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATHS = ("mappings/clay.json",)
DEFAULT_MAX_CONTENT_LENGTH = 5 * 1024 * 1024
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def _config_paths(value) -> list[str]:
    if value is None:
        env = os.environ.get("WORKBENCH_CONFIG_PATHS")
        return env.split(os.pathsep) if env else list(DEFAULT_CONFIG_PATHS)
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(p) for p in value]


def build_runtime(config: dict) -> Runtime:
    configs = ConfigSet(_config_paths(config.get("CONFIG_PATHS")))
    url = config.get("STORE_URL") or os.environ.get("WORKBENCH_STORE_URL") or DEFAULT_STORE_URL
    try:
        store = Store(url)
    except StoreUnavailable as exc:
        # A worker (re)started while the database is down still serves: its requests get a 503
        # until the database is back, instead of the whole server failing to boot.
        log.warning("starting without the event-log database: %s", exc)
        store = Store(url, create=False)
    service = build_service(
        configs,
        store,
        environ=config.get("ENVIRON"),
        write_behind=bool(config.get("WRITE_BEHIND")),
        pause=config.get("WRITE_BEHIND_PAUSE"),
    )
    return Runtime(
        configs,
        store,
        service,
        environ=config.get("ENVIRON"),
        reload_interval=float(config.get("RELOAD_INTERVAL", 1.0)),
    )


def error_body(status: str, message: str, code: int):
    return jsonify({"status": status, "error": message}), code


def _too_large_message() -> str:
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    size = f"{limit / 1024 / 1024:g} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return (
        f"body is larger than this receiver's limit of {size}; send fewer or shorter columns "
        "(the limit is the receiver's MAX_CONTENT_LENGTH)"
    )


# The most a refused body is read to its end for; beyond that the client gets a reset.
DRAIN_LIMIT = 64 * 1024 * 1024


def _drain_input() -> None:
    """Read what the client is still sending, so it can read our answer instead of a reset."""
    stream = request.environ.get("wsgi.input")
    length = request.content_length
    if length is None and request.environ.get("wsgi.input_terminated"):
        length = DRAIN_LIMIT  # chunked: the server ends the stream where the body ends
    length = length or 0
    if stream is None or length > DRAIN_LIMIT:
        return
    try:
        while length > 0:
            chunk = stream.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)
    except Exception:  # the client went away: nothing left to protect
        pass


_HTTP_MESSAGES = {
    404: (
        "not_found",
        "no such URL; Clay rows go to POST /sources/<source>/<environment>, e.g. /sources/clay/development",
    ),
    405: ("method_not_allowed", "use POST to send events here (GET serves the admin event-log page)"),
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(WorkbenchError)
    def workbench_error(exc: WorkbenchError):
        response = error_body(exc.status, str(exc), exc.http_status)
        for name, value in getattr(exc, "headers", {}).items():
            response[0].headers[name] = value
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        if code == 413:
            _drain_input()
            response = error_body("too_large", _too_large_message(), 413)
            response[0].headers["Connection"] = "close"
            return response
        status, message = _HTTP_MESSAGES.get(code, (exc.name.lower().replace(" ", "_"), exc.description))
        response = error_body(status, message, code)
        if code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response[0].headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_body(
            "error", f"internal error ({type(exc).__name__}); the receiver's log has the details", 500
        )


def _no_sniffing(response):
    """No answer is ever read by a browser as another type than it says (JSON as HTML, say)."""
    name, value = NO_SNIFF
    response.headers[name] = value
    return response


def create_app(config: dict | None = None) -> Flask:
    """The receiver. `config` keys: CONFIG_PATHS, STORE_URL, ADMIN_TOKEN, MAX_CONTENT_LENGTH,
    ENVIRON (secrets; default os.environ), RELOAD_INTERVAL, RETRY_INTERVAL (None: no retry thread),
    WRITE_BEHIND (journal and answer, then log in batches; `workbench serve` turns it on) and
    WRITE_BEHIND_PAUSE (seconds a batch gathers requests)."""
    app = Flask("workbench.receiver", template_folder=str(TEMPLATES))
    app.config.from_mapping(
        CONFIG_PATHS=None,
        STORE_URL=None,
        ADMIN_TOKEN=os.environ.get("WORKBENCH_ADMIN_TOKEN") or None,
        MAX_CONTENT_LENGTH=DEFAULT_MAX_CONTENT_LENGTH,
        ENVIRON=None,
        RELOAD_INTERVAL=1.0,
        RETRY_INTERVAL=None,
        WRITE_BEHIND=False,
        WRITE_BEHIND_PAUSE=None,
    )
    app.config.update(config or {})
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["workbench"] = build_runtime(app.config)
    register_error_handlers(app)
    app.after_request(_no_sniffing)
    app.register_blueprint(ingest)
    app.wsgi_app = FastIngest(app, app.wsgi_app)
    app.register_blueprint(admin)
    app.register_blueprint(openapi)
    if app.config["RETRY_INTERVAL"]:
        app.extensions["workbench.retry"] = RetryWorker(
            app.extensions["workbench"], float(app.config["RETRY_INTERVAL"])
        ).start()
    return app

"""The receiver on a thread of this process, for notebooks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from os import PathLike

from werkzeug.serving import WSGIRequestHandler, make_server

from .app import create_app

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """No access line per request: in a notebook it would flood the cell output."""

    def log_request(self, code="-", size="-") -> None:
        pass


class BackgroundReceiver:
    """A receiver serving on a thread of this process; `url` is where to POST, `stop()` ends it."""

    def __init__(self, app, host: str, port: int):
        self.app = app
        self._server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="workbench-receiver", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"BackgroundReceiver(url={self.url!r})"

    def source_url(self, source: str = "clay", environment: str = "development") -> str:
        return f"{self.url}/sources/{source}/{environment}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        worker = self.app.extensions.get("workbench.retry")
        if worker is not None:
            worker.stop()

    def __enter__(self) -> BackgroundReceiver:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_in_background(
    config_paths: str | PathLike | Iterable[str | PathLike] | None = None,
    store_url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    retry_interval: float | None = 5.0,
    **config,
) -> BackgroundReceiver:
    """Start the receiver app on a background thread (port 0 picks a free port)."""
    app = create_app(
        {"CONFIG_PATHS": config_paths, "STORE_URL": store_url, "RETRY_INTERVAL": retry_interval, **config}
    )
    return BackgroundReceiver(app, host, port)

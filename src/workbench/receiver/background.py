"""Work off the request path: the retry loop, and the receiver on a thread for notebooks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from os import PathLike

from werkzeug.serving import WSGIRequestHandler, make_server

from ..errors import StoreUnavailable

log = logging.getLogger(__name__)


class RetryWorker:
    """Calls `service.retry_due()` every `interval` seconds on a daemon thread.

    Several processes may run one each: the store reserves due retries atomically.
    """

    def __init__(self, runtime, interval: float = 5.0):
        self.runtime = runtime
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-retry", daemon=True)

    def start(self) -> RetryWorker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.runtime.reload_configs()
                self.runtime.service.retry_due()
            except StoreUnavailable as exc:  # an outage: one line per pass, not a traceback
                log.warning("retry pass skipped: %s", exc)
            except Exception:  # keep retrying later; one bad pass must not end the loop
                log.exception("retry pass failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


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
    from .app import create_app

    app = create_app(
        {"CONFIG_PATHS": config_paths, "STORE_URL": store_url, "RETRY_INTERVAL": retry_interval, **config}
    )
    return BackgroundReceiver(app, host, port)

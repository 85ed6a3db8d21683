"""`workbench serve`: the receiver app under gunicorn, one app (and service) per worker.

The workers are gevent's (`ReceiverWorker`): each serves many connections at once, so clients
that connect and send nothing, or trickle a byte a second, hold only a cheap greenlet each, never
a whole worker (gunicorn's sync workers wait on one socket each; its gthread workers hand a
connection to a thread once its first bytes arrive, and a trickling client then holds that
thread). On top of gevent's own, the worker bounds how long a client may take:

- the request line and headers: `HEADER_SECONDS` from the moment the worker waits for them;
- any read or write on the socket: `IDLE_SECONDS` without progress;
- the body: `BODY_SECONDS` in all, after which the client is answered 408 and disconnected.
"""

from __future__ import annotations

import gc
import time

import gevent
from gunicorn.app.base import BaseApplication
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from ..errors import SlowClient

HEADER_SECONDS = 5.0
IDLE_SECONDS = 10.0
BODY_SECONDS = 30.0
WORKER_CONNECTIONS = 1000


class _BodyWithDeadline:
    """A request body (gunicorn's `wsgi.input`) that must arrive whole before a deadline."""

    def __init__(self, req, seconds: float):
        self.req = req
        self.body = req.body
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds

    def _within_deadline(self, read, *args):
        remaining = self.deadline - time.monotonic()
        timer = gevent.Timeout(max(remaining, 0.001))
        timer.start()
        try:
            return read(*args)
        except (gevent.Timeout, TimeoutError) as exc:
            if isinstance(exc, gevent.Timeout) and exc is not timer:
                raise
            self.req.must_close = True  # what is left of the body is never read: hang up after
            raise SlowClient(
                f"the body did not arrive within {self.seconds:g} s (or the client stopped sending "
                f"for {IDLE_SECONDS:g} s); nothing was stored: send the row again"
            ) from None
        finally:
            timer.close()

    def read(self, size=None):
        return self._within_deadline(self.body.read, size)

    def readline(self, size=None):
        return self._within_deadline(self.body.readline, size)

    def readlines(self, size=None):
        return self._within_deadline(self.body.readlines, size)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class ReceiverWorker(GeventWorker):
    """gunicorn's gevent worker with the time limits above on each client (`serve` sets
    `body_seconds` in the master; the workers it forks inherit it)."""

    body_seconds = BODY_SECONDS

    def timeout_ctx(self):
        # Wraps the wait for each request's line and headers; on expiry the connection is closed.
        return gevent.Timeout(HEADER_SECONDS, False)

    def handle(self, listener, client, addr):
        # Instead of GeventWorker's blocking socket: every read and write of this connection,
        # headers included, gives up after IDLE_SECONDS without progress.
        client.settimeout(IDLE_SECONDS)
        AsyncWorker.handle(self, listener, client, addr)

    def handle_request(self, listener_name, req, sock, addr):
        req.body = _BodyWithDeadline(req, self.body_seconds)
        return super().handle_request(listener_name, req, sock, addr)


class ReceiverServer(BaseApplication):
    """Gunicorn with the app factory called in each worker, so no database handle crosses a fork."""

    def __init__(self, app_config: dict, options: dict):
        self.app_config = app_config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if value is not None and key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        # In the worker, after gevent has patched the standard library the app's modules use.
        from .app import create_app

        app = create_app(self.app_config)
        # What the worker holds from here on (modules, configs, the app) is never garbage: left
        # out of the collector's full passes, which would otherwise stop every request for tens of
        # milliseconds now and then.
        gc.collect()
        gc.freeze()
        return app


def _write_pending(server, worker) -> None:
    """Gunicorn's worker_exit hook: a worker stopping gracefully logs what it answered."""
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("workbench")
    if runtime is not None:
        runtime.service.close()


def serve(
    config_paths: list[str],
    store_url: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    retry_interval: float = 5.0,
    write_behind: bool = True,
    batch_pause: float = 0.02,
    body_timeout: float = BODY_SECONDS,
    **options,
) -> None:
    """Run the receiver until stopped (blocks)."""
    ReceiverWorker.body_seconds = body_timeout
    app_config = {
        "CONFIG_PATHS": config_paths,
        "STORE_URL": store_url,
        "RETRY_INTERVAL": retry_interval,
        "WRITE_BEHIND": write_behind,
        "WRITE_BEHIND_PAUSE": batch_pause,
    }
    settings = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": "workbench.receiver.serving.ReceiverWorker",
        "worker_connections": WORKER_CONNECTIONS,
        "keepalive": int(HEADER_SECONDS),  # on (any value): the header wait is timeout_ctx's
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": None,
        "proc_name": "workbench-receiver",
        "worker_exit": _write_pending,
        **options,
    }
    ReceiverServer(app_config, settings).run()

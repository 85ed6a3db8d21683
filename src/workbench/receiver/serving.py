"""`workbench serve`: the receiver app under gunicorn, one app (and service) per worker."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


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
        from .app import create_app

        return create_app(self.app_config)


def _write_pending(server, worker) -> None:
    """Gunicorn's worker_exit hook: a worker stopping gracefully logs what it answered."""
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("workbench")
    if runtime is not None and runtime.service.write_behind is not None:
        runtime.service.write_behind.close()


def serve(
    config_paths: list[str],
    store_url: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    retry_interval: float = 5.0,
    write_behind: bool = True,
    batch_pause: float = 0.05,
    **options,
) -> None:
    """Run the receiver until stopped (blocks)."""
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
        "worker_class": "sync",
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": None,
        "proc_name": "workbench-receiver",
        "worker_exit": _write_pending,
        **options,
    }
    ReceiverServer(app_config, settings).run()

"""What a receiver process holds (its configs, store and service), as the blueprints see it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from ..errors import ConfigError, NotFound


@dataclass
class Runtime:
    """What a receiver process holds: its configs, its store and the service over them."""

    configs: Any
    store: Any
    service: Any
    environ: Any = None
    reload_interval: float = 1.0
    _checked: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reload_configs(self) -> None:
        """Pick up edited config files, looking at most once per `reload_interval`."""
        now = time.monotonic()
        if now - self._checked < self.reload_interval:
            return
        with self._lock:
            if now - self._checked < self.reload_interval:
                return
            self._checked = now
            self.configs.reload_if_changed()

    def environment(self, source: str, environment: str):
        """(config, environment) or NotFound, for the admin side."""
        config = self.configs.get(source)
        try:
            return config, config.environment(environment)
        except ConfigError:
            known = ", ".join(config.environments) or "none"
            raise NotFound(
                f"source `{source}` has no environment `{environment}` (it has: {known})"
            ) from None


def runtime() -> Runtime:
    return current_app.extensions["workbench"]

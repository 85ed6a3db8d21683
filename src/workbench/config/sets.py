"""Source configs by source name, loaded from files and reloaded when one changes."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError, NotFound, WorkbenchError
from .files import load_config
from .model import Environment, SourceConfig

log = logging.getLogger(__name__)


class ConfigSet:
    """Source configs by source name, loaded from files and reloaded when a file changes."""

    def __init__(self, paths: Iterable[str | os.PathLike]):
        self.paths = [Path(p) for p in paths]
        self._lock = threading.Lock()
        self._loaded: dict[Path, tuple[tuple[int, int], SourceConfig]] = {}
        self._by_source: dict[str, SourceConfig] = {}
        self.version = 0
        for path in self.paths:
            self._loaded[path] = (self._stamp(path), load_config(path))
        self._index()

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        try:
            stat = path.stat()
        except OSError:
            return (-1, -1)
        return (stat.st_mtime_ns, stat.st_size)

    def _index(self) -> None:
        by_source: dict[str, SourceConfig] = {}
        for path, (_, config) in self._loaded.items():
            if config.source in by_source:
                raise ConfigError(
                    [
                        (
                            "source",
                            f"source `{config.source}` is configured twice: {by_source[config.source].origin} "
                            f"and {path}; give each config its own `source` name",
                        )
                    ]
                )
            by_source[config.source] = config
        self._by_source = by_source
        self.version += 1

    def reload_if_changed(self) -> None:
        """Reload edited files; a file that no longer loads keeps its last good config (logged)."""
        with self._lock:
            changed = False
            for path in self.paths:
                stamp = self._stamp(path)
                if stamp == self._loaded[path][0]:
                    continue
                try:
                    config = load_config(path)
                except WorkbenchError as exc:
                    log.error(
                        "keeping the previous config of %s, the edited file does not load: %s", path, exc
                    )
                    self._loaded[path] = (stamp, self._loaded[path][1])
                    continue
                self._loaded[path] = (stamp, config)
                changed = True
            if changed:
                previous = dict(self._by_source)
                try:
                    self._index()
                except ConfigError as exc:
                    log.error("keeping the previous configs: %s", exc)
                    self._by_source = previous

    def get(self, source: str) -> SourceConfig:
        try:
            return self._by_source[source]
        except KeyError:
            known = ", ".join(sorted(self._by_source)) or "none"
            raise NotFound(f"no source `{source}` is configured on this receiver (known: {known})") from None

    def environment(self, source: str, environment: str) -> tuple[SourceConfig, Environment]:
        config = self.get(source)
        env = config.environments.get(environment)
        if env is None:
            known = ", ".join(config.environments) or "none"
            raise NotFound(f"source `{source}` has no environment `{environment}` (it has: {known})")
        return config, env

    def __iter__(self):
        return iter(list(self._by_source.values()))

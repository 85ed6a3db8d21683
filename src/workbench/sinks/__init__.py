"""Where actions go. `dry-run` lives here; `local` and `knock` have modules of their own."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..config import SinkConfig
from ..engine import ActionRequest, Sink
from ..errors import ConfigError


class DryRunSink:
    """Resolves and validates only: an action that validates reports success, nothing is sent."""

    name = "dry-run"
    transactional = False
    bulk = False

    def apply(self, request: ActionRequest) -> Any:
        return {"dry_run": True}


def make_sink(sink_config: SinkConfig, store=None, environ: Mapping[str, str] | None = None) -> Sink:
    """The sink an environment's config asks for (`local` needs the store it writes into)."""
    environ = os.environ if environ is None else environ
    if sink_config.type == "dry-run":
        return DryRunSink()
    if sink_config.type == "local":
        if store is None:
            raise ConfigError([("sink", 'the "local" sink needs a store; give one, or use "dry-run"')])
        from .local import LocalSink  # SQLAlchemy and the store load only for the local sink

        return LocalSink(store)
    if sink_config.type == "knock":
        from .knock import DEFAULT_TIMEOUT, KnockSink  # the Knock SDK loads only for the knock sink

        options = sink_config.options or {}
        ref = sink_config.api_key
        return KnockSink(
            ref.resolve(environ) if ref is not None else None,
            base_url=sink_config.base_url,
            timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
            max_retries=int(options.get("max_retries", 0)),
            rate_per_second=options.get("rate_per_second"),
            api_key_name=ref.name if ref is not None else "KNOCK_API_KEY",
            rate_limit_scale=float(options.get("rate_limit_scale", 1.0)),
        )
    raise ConfigError([("sink", f"unknown sink type {sink_config.type!r}; use local, dry-run or knock")])


__all__ = ["DryRunSink", "make_sink"]

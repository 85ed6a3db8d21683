"""What a mapping config is once loaded: sources, environments, sinks and action mappings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from ..actions import ACTION_TYPES
from ..errors import ConfigError
from ..paths import MISSING, Path
from ..specs import Condition, PathValue, ValueSpec

SINK_TYPES = ("local", "dry-run", "knock")
# Options of a knock sink: seconds before a call gives up, the SDK's own retries, a pace for every
# call, and how many times faster than Knock's tiers to pace each endpoint (for a test's fake Knock).
SINK_OPTIONS = ("timeout", "max_retries", "rate_per_second", "rate_limit_scale")
DEFAULT_WINDOW_HOURS = 24


@dataclass(frozen=True)
class EnvRef:
    """A secret named by environment variable: `{"$env": "NAME"}`."""

    name: str

    def resolve(self, environ: Mapping[str, str]) -> str | None:
        value = environ.get(self.name)
        return value if value else None

    def to_json(self):
        return {"$env": self.name}


@dataclass(frozen=True)
class IdempotencyConfig:
    path: Path
    hashed: bool
    window: timedelta

    def to_json(self):
        key = {"hash": self.path.text} if self.hashed else self.path.text
        return {"key": key, "window_hours": self.window.total_seconds() / 3600}


@dataclass(frozen=True)
class SinkConfig:
    type: str
    api_key: EnvRef | None = None
    base_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionMapping:
    event: str
    action: str
    params: Mapping[str, ValueSpec]
    when: tuple[Condition, ...]
    active: bool
    index: int
    raw: Mapping[str, Any]

    key: str = ""  # "<index>:<action>": identifies the mapping for replays of what did not succeed

    def __post_init__(self):
        object.__setattr__(self, "key", f"{self.index}:{self.action}")

    @cached_property
    def resolvers(self) -> tuple[tuple[str, Any, bool, ValueSpec], ...]:
        """Per param: (name, resolve, required, spec), derived once; plain paths skip the spec layer."""
        required = ACTION_TYPES[self.action].required
        return tuple((name, _resolver(spec), name in required, spec) for name, spec in self.params.items())


@dataclass(frozen=True)
class Environment:
    name: str
    signing_secrets: tuple[EnvRef, ...]
    idempotency: IdempotencyConfig | None
    sink: SinkConfig
    mappings: tuple[ActionMapping, ...]
    by_event: Mapping[str, tuple[ActionMapping, ...]]

    @cached_property
    def active_events(self) -> frozenset[str]:
        """Event types with at least one active mapping."""
        return frozenset(m.event for m in self.mappings if m.active)

    def mappings_for(self, event: str) -> tuple[ActionMapping, ...]:
        """This event's mappings, in Knock's execution order (config order within a type)."""
        return self.by_event.get(event, ())

    def secrets(self, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
        environ = os.environ if environ is None else environ
        return tuple(s for s in (ref.resolve(environ) for ref in self.signing_secrets) if s)

    def missing_secrets(self, environ: Mapping[str, str] | None = None) -> list[str]:
        environ = os.environ if environ is None else environ
        return [ref.name for ref in self.signing_secrets if not ref.resolve(environ)]


@dataclass(frozen=True)
class SourceConfig:
    source: str
    event_type_path: Path
    environments: Mapping[str, Environment]
    body_template: Mapping[str, Any] | None
    raw: Mapping[str, Any]
    origin: str | None = None

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(self.environments) or "none"
            raise ConfigError(
                [("environments", f"no environment `{name}` in this config (it has: {known})")], self.origin
            ) from None


def _resolver(spec: ValueSpec):
    if type(spec) is PathValue and spec.as_ is None and spec.default is MISSING:
        return spec.path.resolve
    return spec.resolve

"""Mapping configs (`mappings/*.json`): the model, its validation, its files, and a reloading set."""

from .files import canonical_config, dump_config, load_config, save_config
from .model import (
    DEFAULT_WINDOW_HOURS,
    SINK_TYPES,
    ActionMapping,
    Environment,
    EnvRef,
    IdempotencyConfig,
    SinkConfig,
    SourceConfig,
)
from .parsing import parse_config
from .sets import ConfigSet

__all__ = [
    "DEFAULT_WINDOW_HOURS",
    "SINK_TYPES",
    "ActionMapping",
    "ConfigSet",
    "EnvRef",
    "Environment",
    "IdempotencyConfig",
    "SinkConfig",
    "SourceConfig",
    "canonical_config",
    "dump_config",
    "load_config",
    "parse_config",
    "save_config",
]

"""Clay → Knock source workbench: verify, map and apply Clay rows as Knock actions."""

from .body import parse_body
from .config import (
    ActionMapping,
    Environment,
    SourceConfig,
    dump_config,
    load_config,
    parse_config,
    save_config,
)
from .engine import ActionResult, Engine, Outcome, SourceEvent, new_event_id
from .errors import (
    ConfigError,
    InvalidBody,
    TerminalSinkError,
    TransientSinkError,
    VerificationError,
    WorkbenchError,
)
from .paths import MISSING, compile_path
from .verify import verify

__all__ = [
    "MISSING",
    "ActionMapping",
    "ActionResult",
    "ConfigError",
    "Engine",
    "Environment",
    "InvalidBody",
    "Outcome",
    "SourceConfig",
    "SourceEvent",
    "TerminalSinkError",
    "TransientSinkError",
    "VerificationError",
    "WorkbenchError",
    "compile_path",
    "dump_config",
    "load_config",
    "new_event_id",
    "parse_body",
    "parse_config",
    "save_config",
    "verify",
]

"""The Clay HTTP API column set-up for a config: method, URL, headers and body text to paste."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..config import SourceConfig
from ..errors import WorkbenchError
from .bodies import DEFAULT_EVENT, snake_case, template_column

COLUMN_HINT = (
    'In Clay, each "/Column Name" is a column reference: delete it, type "/" inside the quotes and pick '
    "that column; keep the double quotes around it so an empty cell still sends valid JSON."
)


def ingestion_url(base: str, config: SourceConfig, environment: str) -> str:
    """`base` (the receiver's address) completed with `/sources/<source>/<environment>`."""
    config.environment(environment)
    base = base.strip()
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WorkbenchError(
            f"the receiver URL must be an address Clay can reach, starting with https:// (http:// "
            f"for a local test), e.g. https://hooks.example.com; got {base!r}"
        )
    if "/sources/" in parts.path:
        return base
    return f"{base.rstrip('/')}/sources/{config.source}/{environment}"


def body_text(body_template: Mapping[str, Any] | None, columns: list[str] | None = None) -> str:
    """The body as typed into the HTTP API column, one key per line, columns as `/Column Name`."""
    if body_template is None:
        body_template = {"event": {"value": DEFAULT_EVENT}, **{snake_case(c): c for c in columns or ()}}
    lines = []
    for key, spec in body_template.items():
        column = template_column(spec)
        # A reference is not json.dumps'd: Clay substitutes it as typed, so it stays unescaped.
        value = json.dumps(spec["value"], ensure_ascii=False) if column is None else f'"/{column}"'
        lines.append(f"  {json.dumps(key, ensure_ascii=False)}: {value}")
    return "{\n" + ",\n".join(lines) + "\n}"


def setup_text(config: SourceConfig, environment: str, url: str, columns: list[str] | None = None) -> str:
    """Everything to paste into Clay's HTTP API column for `environment`, as readable text."""
    env = config.environment(environment)
    secret_vars = ", ".join(ref.name for ref in env.signing_secrets) or "a signing secret"
    return "\n".join(
        [
            "Method: POST",
            f"URL: {ingestion_url(url, config, environment)}",
            "Headers:",
            "  Content-Type: application/json",
            f"  Authorization: Bearer <your signing secret>   (the value of {secret_vars})",
            "Body:",
            body_text(config.body_template, columns),
            "",
            COLUMN_HINT,
        ]
    )

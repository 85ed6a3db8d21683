"""Events: one request (or one export row) as the engine receives it, with its headers
normalised on the way in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..headers import is_credential

ORIGINS = ("live", "backfill", "replay")

# The body of a log entry standing for a batch of export rows applied in bulk (see
# `backfill.columnar`): the rows are in the export it points at, not in the entry.
BATCH_BODY = "backfill_batch"


def is_batch_entry(origin: str | None, body: Any) -> bool:
    """Whether a logged event (its origin and body text) stands for a batch of backfilled rows."""
    return origin == "backfill" and isinstance(body, str) and body.startswith(f'{{"{BATCH_BODY}"')


def normalize_headers(headers: Any) -> dict[str, str]:
    """Header names lower-cased, repeated headers joined, headers that carry credentials
    (`Authorization`, `Cookie`, `X-Api-Key`, …: see `workbench.headers`) left out."""
    if type(headers) is dict and all(type(k) is str and type(v) is str for k, v in headers.items()):
        out = {k.strip().lower(): v for k, v in headers.items()}
        if len(out) == len(headers):
            for key in [k for k in out if is_credential(k)]:
                del out[key]
            return out
    out = {}
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for name, value in items:
        key = (name.decode("latin-1") if isinstance(name, bytes) else str(name)).strip().lower()
        if is_credential(key):
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


class SourceEvent:
    """One request (or one export row): raw body, headers and where it came from.

    `body` is the raw bytes or text as received, or an already-parsed dict (backfill).
    Headers are normalised on the way in (see `normalize_headers`).
    """

    __slots__ = ("body", "headers", "origin", "id", "received_at")

    def __init__(
        self,
        body: bytes | str | dict,
        headers: Any = None,
        origin: str = "live",
        id: str | None = None,
        received_at: datetime | None = None,
    ):
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
        self.body = body
        self.headers = normalize_headers(headers) if headers else {}
        self.origin = origin
        self.id = id
        self.received_at = received_at

    def __repr__(self) -> str:
        return f"SourceEvent(origin={self.origin!r}, id={self.id!r}, body={len(self.raw_text)} chars)"

    @property
    def raw_text(self) -> str:
        """The body as text for the event log (undecodable bytes replaced)."""
        if isinstance(self.body, dict):
            return json.dumps(self.body, ensure_ascii=False)
        if isinstance(self.body, str):
            return self.body
        return bytes(self.body).decode("utf-8", "replace")

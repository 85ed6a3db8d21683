"""Identities: event ids (ULIDs), a backfilled row's identity and the content hash of a value."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from typing import Any

from ..jsontext import compact_json


def utcnow() -> datetime:
    return datetime.now(UTC)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


def new_event_id(now: datetime | None = None) -> str:
    """`evt_` + a ULID: 48 bits of milliseconds then 80 random bits, so ids sort by time."""
    return new_event_ids(1, now)[0]


def new_event_ids(count: int, now: datetime | None = None) -> list[str]:
    """`count` event ids for one moment (a backfill batch), as `new_event_id` makes them."""
    millis = int((now or utcnow()).timestamp() * 1000)
    # The first five digit pairs hold the 48 bits of milliseconds alone: shared by every id here.
    prefix = "evt_" + "".join([_CROCKFORD_PAIRS[(millis >> shift) & 1023] for shift in (40, 30, 20, 10, 0)])
    randoms = os.urandom(10 * count)
    pairs = _CROCKFORD_PAIRS
    out = []
    for start in range(0, 10 * count, 10):
        value = int.from_bytes(randoms[start : start + 10], "big")
        out.append(prefix + "".join([pairs[(value >> shift) & 1023] for shift in range(70, -1, -10)]))
    return out


def row_identity(source: str, environment: str, event_type: str, key: str) -> str:
    """A backfilled row by its idempotency key (the config's, or the hash of its body) in its
    scope: the same row gets the same identity on every run, whatever event id it is logged under.
    The text of `json.dumps([source, environment, event_type, key], ensure_ascii=False)`, which
    every key derived from it depends on; made part by part (a backfill makes one a row)."""
    parts = (source, environment, event_type, key)
    return "[" + ", ".join([compact_json(p).decode("utf-8", "surrogatepass") for p in parts]) + "]"


def content_hash(value: Any) -> str:
    """SHA-256 of the canonical JSON of `value` (sorted keys, no spaces)."""
    return hashlib.sha256(compact_json(value, sort_keys=True)).hexdigest()

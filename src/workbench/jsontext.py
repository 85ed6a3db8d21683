"""The project's JSON: compact bytes exactly as the standard library writes them, several times
faster (`compact_json`), and the text the event log keeps and the receiver answers (`json_text`).

Content hashes (idempotency keys) and Knock's size limits are defined on
`json.dumps(value, separators=(",", ":"), ensure_ascii=False)`. msgspec writes the very same bytes
for plain JSON values (text keys, finite floats in positional notation); anything else (floats in
exponent form, NaN, other key or value types, nesting past `_MAX_DEPTH`, lone surrogates) goes to
`json.dumps` itself, so the result, and any error raised, is the standard library's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()
_SORTED = msgspec.json.Encoder(order="sorted")
_MAX_DEPTH = 64
_SCALARS = (str, int, bool, type(None))  # written alike by both


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether msgspec writes `value` byte for byte as `json.dumps` does. (Scalars inside a
    container are checked in its loop: a call for each would cost more than the encoding.)"""
    kind = type(value)
    if kind is dict:
        if depth >= _MAX_DEPTH:
            return False
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) not in _SCALARS and not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= _MAX_DEPTH:
            return False
        for item in value:  # noqa: SIM110 (a loop: all() and a generator cost twice as much)
            if type(item) not in _SCALARS and not _plain(item, depth + 1):
                return False
        return True
    if kind is float:
        return math.isfinite(value) and "e" not in repr(value)
    return kind in _SCALARS


def compact_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)` as
    UTF-8 bytes (a lone surrogate written as its three bytes, "surrogatepass")."""
    if _plain(value):
        try:
            return (_SORTED if sort_keys else _ENCODER).encode(value)
        except (UnicodeEncodeError, msgspec.EncodeError, TypeError, OverflowError):
            pass  # a lone surrogate: the standard library's bytes below
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return text.encode("utf-8", "surrogatepass")


def stored_json(value: Any) -> str:
    """JSON text as the store keeps it when msgspec cannot write it (SQLAlchemy's JSON serializer)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def json_processor(fallback: Callable[[Any], Any]) -> Callable[[Any], str]:
    """JSON text by msgspec (several times faster than json.dumps); what msgspec cannot encode
    goes to `fallback`."""

    def process(value):
        try:
            return _ENCODER.encode(value).decode("utf-8")
        except (TypeError, msgspec.EncodeError, OverflowError):
            return fallback(value)

    return process


# JSON text as the store keeps it (and as the receiver answers).
json_text = json_processor(stored_json)

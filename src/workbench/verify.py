"""Shared-secret verification: `Authorization: Bearer <signing secret>`.

Whatever bytes or header values arrive, the only exception that leaves `verify` is
`VerificationError`; its messages never echo the token.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import VerificationError

HOW_TO = "send `Authorization: Bearer <signing secret>` from the Clay HTTP API column"


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        # surrogatepass: header values decoded with surrogateescape must not raise here.
        return value.encode("utf-8", "surrogatepass")
    raise TypeError(type(value).__name__)


def _authorization(headers: Any) -> Any:
    if isinstance(headers, Mapping):
        items: Iterable = headers.items()
    else:
        items = headers or ()
    found = None
    for name, value in items:
        key = name.decode("latin-1") if isinstance(name, (bytes, bytearray)) else str(name)
        if key.strip().lower() == "authorization":
            if found is not None:
                raise VerificationError(f"more than one Authorization header; {HOW_TO}")
            found = value
    return found


def bearer_token(headers: Any) -> bytes:
    """The token from a `Bearer` Authorization header, as bytes."""
    value = _authorization(headers)
    if value is None:
        raise VerificationError(f"missing Authorization header; {HOW_TO}")
    raw = _as_bytes(value).strip()
    scheme, _, token = raw.partition(b" ")
    if not scheme:
        raise VerificationError(f"empty Authorization header; {HOW_TO}")
    if scheme.lower() != b"bearer":
        raise VerificationError(f"Authorization must use the Bearer scheme; {HOW_TO}")
    token = token.strip(b" \t")
    if not token:
        raise VerificationError(f"Authorization has no token after `Bearer`; {HOW_TO}")
    return token


def verify(headers: Any, secrets: Iterable[str]) -> None:
    """Raise `VerificationError` unless the Bearer token equals one of `secrets`."""
    try:
        candidates = [_as_bytes(s) for s in secrets if s]
        if not candidates:
            raise VerificationError(
                "this environment has no signing secret set on the receiver; set the environment "
                "variable its config names in signing_secrets"
            )
        token = bearer_token(headers)
        # Compare against every secret (no early exit) so timing does not tell which one matched.
        matched = False
        for secret in candidates:
            matched |= hmac.compare_digest(token, secret)
    except VerificationError:
        raise
    except Exception as exc:  # any garbage in headers becomes our own error, never a traceback
        raise VerificationError(f"unreadable Authorization header ({type(exc).__name__}); {HOW_TO}") from None
    if not matched:
        raise VerificationError(
            f"Authorization token does not match this environment's signing secret; {HOW_TO}"
        )

"""Which request headers the workbench keeps: every one but those that carry credentials.

A deny-list, applied where a request becomes an event (`engine.normalize_headers`): a header it
names is neither stored in the event log, nor shown on the event-log page, nor readable by a
mapping (a config whose path reads one is refused, see `config`). It covers `Authorization`,
`Proxy-Authorization`, `Cookie` and `Set-Cookie`, and any header whose name says token, secret,
key, auth, password, session, credential or signature (`X-Api-Key`, `X-Auth-Token`, …), except
the idempotency keys a client may send (`Idempotency-Key`, `X-Idempotency-Key`), which are not
credentials.
"""

from __future__ import annotations

from functools import lru_cache

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
CREDENTIAL_WORDS = ("token", "secret", "key", "auth", "passw", "session", "credential", "signature")
NOT_CREDENTIALS = frozenset({"idempotency-key", "x-idempotency-key"})


@lru_cache(maxsize=1024)
def is_credential(name: str) -> bool:
    """Whether the header `name` (any case) may carry a credential, and so is never kept."""
    name = name.strip().lower().replace("_", "-")
    if name in NOT_CREDENTIALS:
        return False
    return name in CREDENTIAL_HEADERS or any(word in name for word in CREDENTIAL_WORDS)


def why_dropped(name: str) -> str:
    """Why a header is never kept, for a config error."""
    return (
        f"the header `{name.lower()}` is never stored or shown to mappings, since headers named like "
        "it (authorization, cookie, or a name saying token, secret, key, auth, password, session, "
        "credential or signature) carry credentials; send the value in the body or under another "
        "header name, such as x-clay-table-id"
    )

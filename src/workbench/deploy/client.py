"""Knock's management API over httpx: sources, rehearse and logs, with retries and errors that say what to do."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import KnockManagementError

DEFAULT_BASE_URL = "https://control.knock.app"
TOKEN_VARIABLE = "KNOCK_SERVICE_TOKEN"
RETRIED = frozenset({429, 500, 502, 503, 504})
_TOKEN_HELP = (
    f"set {TOKEN_VARIABLE} to a service token from Knock's dashboard (Developers → Service tokens); "
    "an environment's API key does not work with the management API"
)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ManagementClient:
    """One Knock account's management API. The token comes from `KNOCK_SERVICE_TOKEN` unless given."""

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        max_retries: int = 4,
        timeout: float = 30.0,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        environ = os.environ if environ is None else environ
        token = token or environ.get(TOKEN_VARIABLE)
        if not token:
            raise KnockManagementError(f"no service token: {_TOKEN_HELP}")
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the operations --------------------------------------------------------------------

    def get_source(self, key: str, environment: str) -> dict | None:
        """The source with its settings for `environment`, or None when Knock has no such source."""
        return self._call(
            "GET", f"/v1/sources/{quote(key, safe='')}", environment, what=f"source `{key}`", missing_ok=True
        )

    def upsert_source(self, key: str, environment: str, body: Mapping[str, Any]) -> dict:
        """Create or update the source's settings for `environment` (PUT); returns the source."""
        answer = self._call(
            "PUT", f"/v1/sources/{quote(key, safe='')}", environment, json=body, what=f"source `{key}`"
        )
        return answer["source"]

    def rehearse(self, key: str, environment: str, payload: Mapping[str, Any]) -> dict:
        """Run `payload` ({"body": ..., "headers": ...}) through Knock's mappings (never in production)."""
        return self._call(
            "POST",
            f"/v1/sources/{quote(key, safe='')}/rehearse",
            environment,
            json={"payload": payload},
            what=f"source `{key}`",
        )

    def logs(self, key: str, environment: str, **params: Any) -> dict:
        """Knock's event logs of the source (`id`, `event`, `include=["actions"]`, `limit`, ...)."""
        return self._call(
            "GET",
            f"/v1/sources/{quote(key, safe='')}/logs",
            environment,
            params=params,
            what=f"source `{key}`",
        )

    def events(self, key: str, environment: str) -> dict:
        """The event types the source has received."""
        return self._call(
            "GET", f"/v1/sources/{quote(key, safe='')}/events", environment, what=f"source `{key}`"
        )

    def source_provider(self, key: str, include_defaults: bool = True) -> dict:
        """A provider (such as `clay`) with its default settings and, by default, its default mappings."""
        params = {"include": ["default_action_mappings"]} if include_defaults else {}
        return self._call(
            "GET",
            f"/v1/source_providers/{quote(key, safe='')}",
            None,
            params=params,
            what=f"source provider `{key}`",
        )

    # -- transport ---------------------------------------------------------------------------

    def _call(self, method, path, environment, json=None, params=None, what="resource", missing_ok=False):
        query = dict(params or {})
        if environment is not None:
            query["environment"] = environment
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, params=query, json=json)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise KnockManagementError(
                        f"cannot reach Knock's management API at {self.base_url} ({type(exc).__name__}: {exc}); "
                        "check the network, or --base-url"
                    ) from None
                self.sleep(min(self.max_wait, 0.5 * 2**attempt))
                attempt += 1
                continue
            if response.status_code in RETRIED and attempt < self.max_retries:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                self.sleep(min(self.max_wait, wait if wait is not None else 0.5 * 2**attempt))
                attempt += 1
                continue
            if response.status_code == 404 and missing_ok:
                return None
            if response.is_success:
                return response.json()
            raise self._error(response, what, environment, attempt)

    def _error(
        self, response: httpx.Response, what: str, environment: str | None, retries: int
    ) -> KnockManagementError:
        status = response.status_code
        said = _knock_message(response)
        where = f" in environment `{environment}`" if environment else ""
        if status == 401:
            text = f"Knock did not accept the service token (401{said}): {_TOKEN_HELP}"
        elif status == 403:
            text = (
                f"the service token may not do this with {what}{where} (403{said}): give the token's "
                "member a role that may manage sources in that environment, or use another token"
            )
        elif status == 404:
            text = (
                f"Knock has no {what}{where} (404{said}): check the key in Knock's dashboard (Platform → "
                "Sources) and the environment's slug"
            )
        elif status == 422:
            text = f"Knock refused the request for {what}{where} as invalid (422{said}); fix what it names and try again"
        elif status in RETRIED:
            text = (
                f"Knock's management API answered {status} after {retries + 1} tries{said}; "
                "it is busy or down, try again in a few minutes"
            )
        else:
            text = f"Knock's management API answered {status} for {what}{where}{said}"
        return KnockManagementError(text, http_status=status)


def _knock_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    message = body.get("message") or body.get("error")
    parts = [str(message)] if message else []
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            parts.append(": ".join(str(error[k]) for k in ("field", "message") if error.get(k)))
    return (": " + "; ".join(parts)) if parts else ""

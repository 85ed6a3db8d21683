"""Cross-site request forgery: what a browser's admin request must carry to change anything.

A browser sends the admin's saved Basic credentials with any form that targets the receiver,
whichever site the form is on. So a request that rides on them must show it comes from the
event-log page: an `Origin` of this very host (a `null` or missing one is refused: browsers send
`null` after a cross-site redirect) and the signed token that page put in its form. Requests with
the token as `Authorization: Bearer` cannot come from another site's form and need neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import request
from itsdangerous import BadData, URLSafeTimedSerializer

from ..errors import WorkbenchError

FORM_TOKEN_FIELD = "form_token"
# A page left open this long needs a reload before its buttons work.
FORM_TOKEN_MAX_AGE = 12 * 3600
_SALT = "workbench event-log page"


class CrossSiteRequest(WorkbenchError):
    """A browser request to an admin action that does not come from the event-log page."""

    http_status = 403
    status = "forbidden"


def _signer(admin_token: str) -> URLSafeTimedSerializer:
    # Derived from the admin token: every worker and every receiver sharing it signs alike.
    key = hmac.new(admin_token.encode("utf-8", "surrogatepass"), _SALT.encode(), hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt=_SALT)


def form_token(admin_token: str, source: str, environment: str) -> str:
    """A token for one rendering of the page of `source`/`environment`."""
    return _signer(admin_token).dumps([source, environment, secrets.token_urlsafe(8)])


def _token_is_valid(admin_token: str, source: str, environment: str, token: str) -> bool:
    try:
        found = _signer(admin_token).loads(token, max_age=FORM_TOKEN_MAX_AGE)
    except BadData:
        return False
    return isinstance(found, list) and found[:2] == [source, environment]


def check_browser_request(admin_token: str) -> None:
    """Refuse an admin action sent with browser credentials unless it comes from our page."""
    auth = request.authorization
    if auth is not None and auth.type == "bearer":
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site != "same-origin":
        raise CrossSiteRequest(
            f"admin actions from a browser must come from the event-log page ({fetch_site})"
        )
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        raise CrossSiteRequest(
            "admin actions from a browser need an Origin header of this receiver; use the event-log "
            "page's buttons, or send the admin token as `Authorization: Bearer`"
        )
    if urlsplit(origin).netloc != request.host:
        raise CrossSiteRequest(f"admin actions must come from this receiver's own page, not {origin[:100]}")
    args = request.view_args or {}
    token = request.form.get(FORM_TOKEN_FIELD, "")
    if not _token_is_valid(admin_token, args.get("source", ""), args.get("environment", ""), token):
        raise CrossSiteRequest(
            "the page's form token is missing, wrong or too old; reload the event-log page and try again"
        )

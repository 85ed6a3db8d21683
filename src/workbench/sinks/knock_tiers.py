"""Knock's rate limits for the endpoints the workbench calls, and a pace for each.

Each endpoint of Knock's API has a rate-limit tier (`x-ratelimit-tier` in Knock's API description,
`api-openapi.yml`) and each tier a rate (its API reference's "Rate limits" table). The tables
below are copied from those two files and held to them by a test (`tests/sinks/test_knock_tiers.py`).
"""

from __future__ import annotations

import threading
import time

# Requests a second per tier.
TIER_RATES = {1: 1, 2: 5, 3: 60, 4: 200, 5: 1000}

# (method, path template) -> tier, for every endpoint the workbench calls.
TIERS = {
    ("PUT", "/v1/users/{user_id}"): 3,
    ("DELETE", "/v1/users/{user_id}"): 2,
    ("PUT", "/v1/objects/{collection}/{id}"): 3,
    ("DELETE", "/v1/objects/{collection}/{id}"): 3,
    ("PUT", "/v1/tenants/{id}"): 3,
    ("DELETE", "/v1/tenants/{id}"): 2,
    ("POST", "/v1/objects/{collection}/{object_id}/subscriptions"): 3,
    ("DELETE", "/v1/objects/{collection}/{object_id}/subscriptions"): 3,
    ("POST", "/v1/audiences/{key}/members"): 3,
    ("DELETE", "/v1/audiences/{key}/members"): 3,
    ("POST", "/v1/workflows/{key}/trigger"): 5,
    ("POST", "/v1/workflows/{key}/cancel"): 5,
    ("POST", "/v1/users/bulk/identify"): 1,
    ("POST", "/v1/users/bulk/delete"): 1,
    ("POST", "/v1/objects/{collection}/bulk/set"): 1,
    ("POST", "/v1/objects/{collection}/bulk/delete"): 1,
    ("POST", "/v1/objects/{collection}/bulk/subscriptions/add"): 1,
    ("POST", "/v1/objects/{collection}/bulk/subscriptions/delete"): 1,
    ("POST", "/v1/tenants/bulk/set"): 1,
    ("POST", "/v1/tenants/bulk/delete"): 1,
    ("GET", "/v1/bulk_operations/{id}"): 4,
}

# The endpoint each action type (and each bulk call) goes to.
ENDPOINTS = {
    "users_identify": ("PUT", "/v1/users/{user_id}"),
    "users_delete": ("DELETE", "/v1/users/{user_id}"),
    "objects_set": ("PUT", "/v1/objects/{collection}/{id}"),
    "objects_delete": ("DELETE", "/v1/objects/{collection}/{id}"),
    "tenants_set": ("PUT", "/v1/tenants/{id}"),
    "tenants_delete": ("DELETE", "/v1/tenants/{id}"),
    "objects_subscribe": ("POST", "/v1/objects/{collection}/{object_id}/subscriptions"),
    "objects_unsubscribe": ("DELETE", "/v1/objects/{collection}/{object_id}/subscriptions"),
    "audiences_add_member": ("POST", "/v1/audiences/{key}/members"),
    "audiences_remove_member": ("DELETE", "/v1/audiences/{key}/members"),
    "workflows_trigger": ("POST", "/v1/workflows/{key}/trigger"),
    "workflows_cancel": ("POST", "/v1/workflows/{key}/cancel"),
    "bulk:users_identify": ("POST", "/v1/users/bulk/identify"),
    "bulk:users_delete": ("POST", "/v1/users/bulk/delete"),
    "bulk:objects_set": ("POST", "/v1/objects/{collection}/bulk/set"),
    "bulk:objects_delete": ("POST", "/v1/objects/{collection}/bulk/delete"),
    "bulk:objects_subscribe": ("POST", "/v1/objects/{collection}/bulk/subscriptions/add"),
    "bulk:objects_unsubscribe": ("POST", "/v1/objects/{collection}/bulk/subscriptions/delete"),
    "bulk:tenants_set": ("POST", "/v1/tenants/bulk/set"),
    "bulk:tenants_delete": ("POST", "/v1/tenants/bulk/delete"),
    "bulk_operation": ("GET", "/v1/bulk_operations/{id}"),
}


def rate(endpoint: str) -> float:
    """Requests a second Knock allows to `endpoint` (a key of ENDPOINTS)."""
    return TIER_RATES[TIERS[ENDPOINTS[endpoint]]]


class Pace:
    """Calls to each endpoint spaced by its tier's rate (times `scale`), across this process's
    threads. Knock counts per endpoint and environment; a sink paces the calls it makes itself."""

    def __init__(self, scale: float = 1.0, sleep=time.sleep, clock=time.monotonic):
        self.scale = scale
        self.sleep, self.clock = sleep, clock
        self._next: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def interval(self, endpoint: str) -> float:
        return 1.0 / (rate(endpoint) * self.scale)

    def wait(self, endpoint: str) -> float:
        """Wait for the endpoint's next slot; returns the seconds waited."""
        key = ENDPOINTS[endpoint]
        with self._lock:
            now = self.clock()
            start = max(now, self._next.get(key, 0.0))
            self._next[key] = start + self.interval(endpoint)
        if start > now:
            self.sleep(start - now)
        return max(0.0, start - now)

    def hold(self, endpoint: str, seconds: float) -> None:
        """Knock said to wait `seconds` (a 429's Retry-After) before calling `endpoint` again."""
        key = ENDPOINTS[endpoint]
        with self._lock:
            self._next[key] = max(self._next.get(key, 0.0), self.clock() + seconds)

"""The durable store: event log, action log, idempotency keys and the local recipient store.

SQLAlchemy Core with portable SQL, so SQLite (the default) and PostgreSQL share one code path.
"""

from .db import StoreError, insert_ignoring_conflicts, make_engine, upsert
from .idempotency import StoreIdempotency
from .log import DEFAULT_STORE_URL, EVENT_STATUSES, REPLAYABLE, Store, iso
from .schema import (
    actions,
    applied_payloads,
    events,
    idempotency_keys,
    local_audience_members,
    local_objects,
    local_subscriptions,
    local_tenants,
    local_users,
    local_workflow_runs,
    metadata,
)

__all__ = [
    "DEFAULT_STORE_URL",
    "EVENT_STATUSES",
    "REPLAYABLE",
    "Store",
    "StoreError",
    "StoreIdempotency",
    "actions",
    "applied_payloads",
    "events",
    "idempotency_keys",
    "insert_ignoring_conflicts",
    "iso",
    "local_audience_members",
    "local_objects",
    "local_subscriptions",
    "local_tenants",
    "local_users",
    "local_workflow_runs",
    "make_engine",
    "metadata",
    "upsert",
]

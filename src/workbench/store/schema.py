"""Tables of the event log, the idempotency keys and the local recipient store (SQLAlchemy Core)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out; stored naive UTC so every database compares alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL results on SQLite
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

# Characters of the event type the event-log page's index holds: PostgreSQL refuses index rows
# over about 2.7 kB, and a row's event type is whatever text it sent.
EVENT_KEY_LENGTH = 200

# `none_as_null`: a Python None is SQL NULL, not the JSON text "null".
JSONValue = JSON(none_as_null=True)

events = Table(
    "events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("source", String(200), nullable=False),
    Column("environment", String(200), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("event", Text),
    Column("status", String(16), nullable=False),
    Column("body", Text, nullable=False),
    # The raw bytes, kept only when the body is not UTF-8, so a replay sees exactly what arrived.
    Column("body_bytes", LargeBinary),
    Column("headers", JSONValue),
    Column("idempotency_key", String(255)),
    Column("idempotency_note", Text),
    Column("error", Text),
    Column("replays", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_events_status_received", "status", "received_at"),
    Index("ix_events_received", "received_at"),
)

# The event-log page's filters, each in the page's order (newest first, by time then id).
Index("ix_events_page", events.c.source, events.c.environment, events.c.received_at, events.c.id)
Index(
    "ix_events_page_status",
    events.c.source,
    events.c.environment,
    events.c.status,
    events.c.received_at,
    events.c.id,
)
Index(
    "ix_events_page_origin",
    events.c.source,
    events.c.environment,
    events.c.origin,
    events.c.received_at,
    events.c.id,
)
Index(
    "ix_events_page_event",
    events.c.source,
    events.c.environment,
    func.substr(events.c.event, 1, EVENT_KEY_LENGTH),
    events.c.received_at,
    events.c.id,
)

actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False),
    Column("position", Integer, nullable=False),
    Column("mapping", String(64), nullable=False),
    Column("action", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", JSONValue),
    Column("payload", JSONValue),
    Column("result", JSONValue),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    # A workflow trigger's Idempotency-Key, kept while Knock may have run it under that key.
    Column("request_key", String(255)),
    UniqueConstraint("event_id", "mapping", name="uq_actions_event_mapping"),
    Index("ix_actions_status_next", "status", "next_attempt_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("environment", String(200), nullable=False),
    Column("event_type", String(500), nullable=False),
    Column("key", String(255), nullable=False),
    Column("state", String(16), nullable=False),  # reserved (executing) or done (a success, remembered)
    Column("window_seconds", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # The event that claimed the key before it was logged (the write-behind receiver), or NULL.
    Column("event_id", String(40)),
    UniqueConstraint("source", "environment", "event_type", "key", name="uq_idempotency_scope_key"),
    Index("ix_idempotency_expires", "expires_at"),
)

# Per environment and target (see `workbench.targets`), the hash of the payload last applied
# successfully, whether by a live row or a backfill: what makes a backfill a sync.
applied_payloads = Table(
    "applied_payloads",
    metadata,
    Column("source", String(200), nullable=False),
    Column("environment", String(200), nullable=False),
    Column("target", String(64), nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("event_id", String(40)),  # the event that applied it, whose log holds the payload
    Column("applied_at", UTCDateTime, nullable=False),
    # The fingerprint of the backfilled row that applied it (see `applied_rows`); NULL when a live
    # row or anything else applied it last.
    Column("row_fingerprint", String(32)),
    # The config digest under which that row is remembered here, when this target is the only one
    # it applied and it ended `done`: such a row needs no `applied_rows` entry, and is forgotten
    # when the target changes hands as the fingerprint is overwritten. NULL otherwise.
    Column("row_config", String(64)),
    PrimaryKeyConstraint("source", "environment", "target"),
)

# Per environment, the backfilled rows a re-run need not plan again (`backfill.fingerprints`):
# the row's fingerprint, how it ended (`done`: applied or unchanged; or skipped, invalid,
# no_mapping, failed before anything was sent) and under which config digest. A row is forgotten
# as soon as a target it applied is applied by anything else (`APPLIED_ROWS_TRIGGERS`). A row
# that ended `done` on one target is remembered on that target instead (`row_config` above).
applied_rows = Table(
    "applied_rows",
    metadata,
    Column("source", String(200), nullable=False),
    Column("environment", String(200), nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("config_digest", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    PrimaryKeyConstraint("source", "environment", "fingerprint"),
    sqlite_with_rowid=False,  # the rows of an environment read in one sequential scan
)

# When an applied_payloads row changes hands (another row fingerprint, or none: a live row) or is
# deleted, the backfilled row that held it is forgotten: the database does it, so no writer of
# applied_payloads (the receiver's among them) has anything to do or read for it.
_FORGET_HOLDER = (
    "DELETE FROM applied_rows WHERE source = OLD.source AND environment = OLD.environment "
    "AND fingerprint = OLD.row_fingerprint"
)
APPLIED_ROWS_TRIGGERS = {
    "sqlite": [
        "DROP TRIGGER IF EXISTS applied_payloads_taken_over",
        "CREATE TRIGGER applied_payloads_taken_over AFTER UPDATE OF row_fingerprint ON applied_payloads "
        "FOR EACH ROW WHEN OLD.row_fingerprint IS NOT NULL AND OLD.row_fingerprint IS NOT NEW.row_fingerprint "
        f"BEGIN {_FORGET_HOLDER}; END",
        "DROP TRIGGER IF EXISTS applied_payloads_deleted",
        "CREATE TRIGGER applied_payloads_deleted AFTER DELETE ON applied_payloads "
        f"FOR EACH ROW WHEN OLD.row_fingerprint IS NOT NULL BEGIN {_FORGET_HOLDER}; END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION applied_payloads_forget_holder() RETURNS trigger LANGUAGE plpgsql "
        f"AS $$ BEGIN {_FORGET_HOLDER}; RETURN NULL; END $$",
        "DROP TRIGGER IF EXISTS applied_payloads_taken_over ON applied_payloads",
        "CREATE TRIGGER applied_payloads_taken_over AFTER UPDATE OF row_fingerprint ON applied_payloads "
        "FOR EACH ROW WHEN (OLD.row_fingerprint IS NOT NULL "
        "AND OLD.row_fingerprint IS DISTINCT FROM NEW.row_fingerprint) "
        "EXECUTE FUNCTION applied_payloads_forget_holder()",
        "DROP TRIGGER IF EXISTS applied_payloads_deleted ON applied_payloads",
        "CREATE TRIGGER applied_payloads_deleted AFTER DELETE ON applied_payloads "
        "FOR EACH ROW WHEN (OLD.row_fingerprint IS NOT NULL) EXECUTE FUNCTION applied_payloads_forget_holder()",
    ],
}

# -- the local sink: a Knock-like recipient store ------------------------------------------


def _records(name: str, *keys: str) -> Table:
    """A table of Knock-like records: their key, their JSON data, when each was made and changed."""
    return Table(
        name,
        metadata,
        *(Column(key, String(256), nullable=False) for key in keys),
        Column("data", JSONValue, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        PrimaryKeyConstraint(*keys),
    )


local_users = _records("local_users", "id")
local_objects = _records("local_objects", "collection", "id")
local_tenants = _records("local_tenants", "id")

local_subscriptions = Table(
    "local_subscriptions",
    metadata,
    Column("collection", String(256), nullable=False),
    Column("object_id", String(256), nullable=False),
    # A user id, or the canonical JSON of an object reference {"collection", "id"}.
    Column("recipient", String(600), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("collection", "object_id", "recipient"),
)

local_audience_members = Table(
    "local_audience_members",
    metadata,
    Column("audience_key", String(256), nullable=False),
    Column("user_id", String(256), nullable=False),
    Column("tenant", String(256), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("audience_key", "user_id", "tenant"),
)

# One row per recipient, as Knock runs a workflow once per recipient of a trigger.
local_workflow_runs = Table(
    "local_workflow_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger_id", String(64), nullable=False),
    Column("idempotency_key", String(255)),
    Column("workflow", String(256), nullable=False),
    Column("recipient", String(600), nullable=False),
    Column("actor", JSONValue),
    Column("data", JSONValue),
    Column("tenant", String(256)),
    Column("cancellation_key", String(256)),
    Column("status", String(16), nullable=False),  # triggered, cancelled
    Column("event_id", String(40)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("cancelled_at", UTCDateTime),
    Index("ix_local_runs_idempotency", "idempotency_key"),
    Index("ix_local_runs_cancel", "workflow", "cancellation_key"),
)

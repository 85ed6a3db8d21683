"""The event log, action log, idempotency keys and local recipient store, as first released.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("mapping", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "mapping", name="uq_actions_event_mapping"),
    )
    op.create_index("ix_actions_status_next", "actions", ["status", "next_attempt_at"])

    op.create_table(
        "events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("environment", sa.String(length=200), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("event", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_bytes", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("idempotency_note", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("replays", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_received", "events", ["received_at"])
    op.create_index("ix_events_source_env_received", "events", ["source", "environment", "received_at"])
    op.create_index("ix_events_status_received", "events", ["status", "received_at"])

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("environment", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=500), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("window_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "environment", "event_type", "key", name="uq_idempotency_scope_key"),
    )
    op.create_index("ix_idempotency_expires", "idempotency_keys", ["expires_at"])

    op.create_table(
        "local_audience_members",
        sa.Column("audience_key", sa.String(length=256), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("tenant", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("audience_key", "user_id", "tenant"),
    )
    op.create_table(
        "local_objects",
        sa.Column("collection", sa.String(length=256), nullable=False),
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("collection", "id"),
    )
    op.create_table(
        "local_subscriptions",
        sa.Column("collection", sa.String(length=256), nullable=False),
        sa.Column("object_id", sa.String(length=256), nullable=False),
        sa.Column("recipient", sa.String(length=600), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("collection", "object_id", "recipient"),
    )
    op.create_table(
        "local_tenants",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "local_users",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "local_workflow_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trigger_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("workflow", sa.String(length=256), nullable=False),
        sa.Column("recipient", sa.String(length=600), nullable=False),
        sa.Column("actor", sa.JSON(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("tenant", sa.String(length=256), nullable=True),
        sa.Column("cancellation_key", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_local_runs_cancel", "local_workflow_runs", ["workflow", "cancellation_key"])
    op.create_index("ix_local_runs_idempotency", "local_workflow_runs", ["idempotency_key"])


def downgrade() -> None:
    op.drop_index("ix_local_runs_idempotency", table_name="local_workflow_runs")
    op.drop_index("ix_local_runs_cancel", table_name="local_workflow_runs")

    op.drop_table("local_workflow_runs")
    op.drop_table("local_users")
    op.drop_table("local_tenants")
    op.drop_table("local_subscriptions")
    op.drop_table("local_objects")
    op.drop_table("local_audience_members")
    op.drop_index("ix_idempotency_expires", table_name="idempotency_keys")

    op.drop_table("idempotency_keys")
    op.drop_index("ix_events_status_received", table_name="events")
    op.drop_index("ix_events_source_env_received", table_name="events")
    op.drop_index("ix_events_received", table_name="events")

    op.drop_table("events")
    op.drop_index("ix_actions_status_next", table_name="actions")

    op.drop_table("actions")

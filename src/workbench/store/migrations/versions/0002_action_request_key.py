"""Workflow triggers keep the Idempotency-Key they were sent under (`actions.request_key`).

Triggers that may have run in Knock (queued, or failed after their last retry) get the key they
were sent under so far, so their next attempt sends it again; refused ones take a new key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _sent_key(row) -> str:
    """The key the trigger was sent under before this revision."""
    if row.origin == "backfill" and row.idempotency_key and row.event:
        identity = json.dumps(
            [row.source, row.environment, row.event, row.idempotency_key], ensure_ascii=False
        )
        return "row_" + hashlib.sha256(f"{identity}\n{row.mapping}".encode()).hexdigest()
    return f"{row.event_id}:{row.mapping}"


def upgrade() -> None:
    bind = op.get_bind()
    if "request_key" not in {c["name"] for c in sa.inspect(bind).get_columns("actions")}:
        with op.batch_alter_table("actions") as batch:
            batch.add_column(sa.Column("request_key", sa.String(length=255), nullable=True))
    actions = sa.table(
        "actions",
        *(sa.column(name) for name in ("id", "event_id", "mapping", "action", "status", "error", "attempts")),
        sa.column("request_key"),
    )
    events = sa.table(
        "events",
        *(sa.column(name) for name in ("id", "origin", "source", "environment", "event", "idempotency_key")),
    )
    in_flight = bind.execute(
        sa.select(
            actions.c.id,
            actions.c.event_id,
            actions.c.mapping,
            events.c.origin,
            events.c.source,
            events.c.environment,
            events.c.event,
            events.c.idempotency_key,
        )
        .join(events, events.c.id == actions.c.event_id)
        .where(
            actions.c.action == "workflows_trigger",
            actions.c.request_key.is_(None),
            actions.c.attempts > 0,
            sa.or_(
                actions.c.status == "queued",
                sa.and_(actions.c.status == "failed", actions.c.error.like("gave up after %")),
            ),
        )
    ).all()
    for row in in_flight:
        bind.execute(actions.update().where(actions.c.id == row.id).values(request_key=_sent_key(row)))


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("request_key")

"""An idempotency key remembers the event that holds it (`idempotency_keys.event_id`).

The write-behind receiver claims a key before it answers and logs the event afterwards; after a
crash, the event's journal entry finds its own claim by this id instead of taking itself for a
duplicate. Keys claimed before this revision hold no event (NULL).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "event_id" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("idempotency_keys")}:
        with op.batch_alter_table("idempotency_keys") as batch:
            batch.add_column(sa.Column("event_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("event_id")

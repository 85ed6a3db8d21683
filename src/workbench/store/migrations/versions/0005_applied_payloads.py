"""Backfills are syncs: the hash of the payload last applied to each target (`applied_payloads`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("applied_payloads"):  # made by `create_all` before migrations
        return
    op.create_table(
        "applied_payloads",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("environment", sa.String(length=200), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "environment", "target"),
    )


def downgrade() -> None:
    op.drop_table("applied_payloads")

"""A backfilled row that ended `done` on one target is remembered on that target
(`applied_payloads.row_config`: the config digest beside its fingerprint) rather than in
`applied_rows`: the most common row then costs one table written instead of two.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08

"""

import sqlalchemy as sa
from alembic import op

from workbench.store.schema import APPLIED_ROWS_TRIGGERS

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "row_config" not in {c["name"] for c in inspector.get_columns("applied_payloads")}:
        # A plain ADD COLUMN on both databases: the table and its triggers stay as they are.
        op.add_column("applied_payloads", sa.Column("row_config", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # The rows remembered on their targets are forgotten with the column: a re-run plans them again.
    with op.batch_alter_table("applied_payloads") as batch:
        batch.drop_column("row_config")
    for statement in APPLIED_ROWS_TRIGGERS[op.get_bind().dialect.name]:  # SQLite rebuilt the table
        op.execute(statement)

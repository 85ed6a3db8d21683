"""A backfilled row remembered by its fingerprint (`applied_rows`), and the fingerprint of the row
that applied each target (`applied_payloads.row_fingerprint`), forgotten by triggers when the
target changes hands: a re-run compares rows in bulk.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

"""

import sqlalchemy as sa
from alembic import op

from workbench.store.schema import APPLIED_ROWS_TRIGGERS

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "row_fingerprint" not in {c["name"] for c in inspector.get_columns("applied_payloads")}:
        with op.batch_alter_table("applied_payloads") as batch:
            batch.add_column(sa.Column("row_fingerprint", sa.String(length=32), nullable=True))
    if not inspector.has_table("applied_rows"):
        op.create_table(
            "applied_rows",
            sa.Column("source", sa.String(length=200), nullable=False),
            sa.Column("environment", sa.String(length=200), nullable=False),
            sa.Column("fingerprint", sa.String(length=32), nullable=False),
            sa.Column("config_digest", sa.String(length=64), nullable=False),
            sa.Column("status", sa.String(length=20), nullable=False),
            sa.PrimaryKeyConstraint("source", "environment", "fingerprint"),
            sqlite_with_rowid=False,
        )
    for statement in APPLIED_ROWS_TRIGGERS[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade() -> None:
    for trigger in ("applied_payloads_taken_over", "applied_payloads_deleted"):
        on = " ON applied_payloads" if op.get_bind().dialect.name == "postgresql" else ""
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}{on}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS applied_payloads_forget_holder()")
    op.drop_table("applied_rows")
    with op.batch_alter_table("applied_payloads") as batch:
        batch.drop_column("row_fingerprint")

"""Indexes for the event-log page: one per filter, each ending in the page's order.

(source, environment, received_at, id) takes over from (source, environment, received_at); the
event type is indexed by its first 200 characters (PostgreSQL refuses longer index rows).
Each is made only where missing: stores made by `create_all` already have them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCOPE = ["source", "environment"]
ORDER = ["received_at", "id"]


def upgrade() -> None:
    op.create_index("ix_events_page", "events", [*SCOPE, *ORDER], if_not_exists=True)
    op.create_index("ix_events_page_status", "events", [*SCOPE, "status", *ORDER], if_not_exists=True)
    op.create_index("ix_events_page_origin", "events", [*SCOPE, "origin", *ORDER], if_not_exists=True)
    op.create_index(
        "ix_events_page_event",
        "events",
        [*(sa.column(c) for c in SCOPE), sa.func.substr(sa.column("event"), 1, 200), *map(sa.column, ORDER)],
        if_not_exists=True,
    )
    op.drop_index("ix_events_source_env_received", table_name="events", if_exists=True)


def downgrade() -> None:
    op.create_index("ix_events_source_env_received", "events", ["source", "environment", "received_at"])
    for name in ("ix_events_page_event", "ix_events_page_origin", "ix_events_page_status", "ix_events_page"):
        op.drop_index(name, table_name="events")

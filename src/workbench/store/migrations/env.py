"""Alembic environment of the event-log store.

`workbench.store.migrate.upgrade(engine)` runs it on a connection it already holds (inside the
migration lock). To write a new revision after changing `workbench/store/schema.py`:

    python -c "from alembic import command; from workbench.store.migrate import alembic_config; \
command.revision(alembic_config(url='sqlite:///scratch.sqlite'), 'what changed', autogenerate=True)"

against a scratch database upgraded to the previous head.
"""

from __future__ import annotations

from alembic import context

from workbench.store.db import make_engine
from workbench.store.migrate import VERSION_TABLE
from workbench.store.schema import metadata


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        # SQLite alters tables by copying them; Alembic's batch mode does that.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as own:
        run(own)
    engine.dispose()

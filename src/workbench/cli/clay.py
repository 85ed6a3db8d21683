"""Commands over Clay exports: load one into DuckDB, backfill it, and print the HTTP API column set-up."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import main

DEFAULT_DB = "data/workbench.duckdb"


def _connect(db: str, read_only: bool = False):
    import duckdb

    from ..errors import WorkbenchError

    if db != ":memory:":
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(db, read_only=read_only)
    except duckdb.Error as exc:
        raise WorkbenchError(
            f"cannot open the DuckDB database {db} ({exc}); if a notebook holds it, shut that kernel down"
        ) from None


@main.command()
@click.argument("export", type=click.Path(dir_okay=False))
@click.option("--db", default=DEFAULT_DB, show_default=True, help="DuckDB database file to load into.")
@click.option("--table", help="Table to load into [default: from the file name, e.g. leads_q3].")
def load(export, db, table):
    """Load a Clay CSV EXPORT into DuckDB and show a profile of its columns.

    Every cell is kept as text, exactly as exported; headers stay verbatim (a repeated header
    gets " (2)"); `_row_number`, `_source_file` and `_loaded_at` are added. Loading the same file
    again replaces its rows. Ends with one JSON line: {"table", "rows", "columns"}.
    """
    from ..clay import load_export, profile

    con = _connect(db)
    try:
        loaded = load_export(export, con, table)
        profiles = profile(con, loaded.table)
    finally:
        con.close()
    width = max((len(p.column) for p in profiles), default=6)
    click.echo(f"{'column':<{width}}  {'filled':>6}  {'distinct':>8}  {'kind':<11}  example")
    for p in profiles:
        example = (p.examples[0] if p.examples else "").replace("\n", "⏎")
        example = example if len(example) <= 40 else example[:39] + "…"
        click.echo(f"{p.column:<{width}}  {p.non_empty:>6.0%}  {p.distinct:>8}  {p.kind:<11}  {example}")
    click.echo(json.dumps(loaded.to_dict()))


@main.command("clay-setup")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--env", "env", required=True, help="Environment of the config, e.g. production.")
@click.option("--url", required=True, help="Public address of the receiver, e.g. https://hooks.example.com.")
@click.option(
    "--export",
    type=click.Path(exists=True, dir_okay=False),
    help="A Clay export whose columns fill the body when the config has no clay.body_template.",
)
def clay_setup(config, env, url, export):
    """Print the Clay HTTP API column set-up for CONFIG: method, URL, headers and body.

    The body comes from the config's clay.body_template, with each column written as a
    "/Column Name" reference to re-insert in Clay by typing "/".
    """
    from ..clay import read_columns, setup_text
    from ..config import load_config

    cfg = load_config(config)
    columns = read_columns(export) if export else None
    click.echo(setup_text(cfg, env, url, columns))


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.argument("export", required=False, type=click.Path(dir_okay=False))
@click.option("--env", "env", required=True, help="Environment of the config, e.g. development.")
@click.option("--table", help="Backfill a table loaded by `workbench load` instead of a CSV file.")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="DuckDB database holding --table.")
@click.option("--event", help="Event type for every row [default: the template's event, else lead.enriched].")
@click.option(
    "--store",
    "store_url",
    envvar="WORKBENCH_STORE_URL",
    help="Event-log database URL [default: sqlite:///data/workbench.sqlite, or $WORKBENCH_STORE_URL].",
)
@click.option(
    "--failures",
    type=click.Path(dir_okay=False),
    help="Write rows that were invalid, failed or had no mapping here (the row, _status, _reason).",
)
@click.option("--limit", type=click.IntRange(min=0), help="Process at most this many rows.")
@click.option(
    "--header",
    "-H",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="A static header every row carries, readable as headers.<name>; repeatable.",
)
@click.option(
    "--batch-size",
    default=2000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Rows per transaction.",
)
@click.option(
    "--bulk/--no-bulk",
    default=True,
    show_default=True,
    help="With the knock sink, send users, objects, tenants and subscriptions with Knock's bulk "
    "endpoints (1,000 a call, 429s waited out).",
)
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar [default: when on a terminal]."
)
def backfill(
    config, export, env, table, db, event, store_url, failures, limit, headers, batch_size, bulk, progress
):
    """Run the rows of a Clay EXPORT (or --table) through CONFIG's mappings for --env.

    Each row becomes the body the HTTP API column would POST (the config's clay.body_template),
    goes through the same engine as live rows with origin `backfill` (no signature check) and
    is applied to the environment's sink. Every row is logged as an event, in transactions of
    --batch-size rows. Re-running is safe: rows that already succeeded are counted `idempotent`
    and not applied again. When the config has no idempotency key, the backfill keys each row
    by a SHA-256 content hash of its body (remembered 30 days). Stopping it (Ctrl-C, or even a
    kill) and running it again completes it without duplicates (with the knock sink, the batch
    in flight may be sent again: identifies are upserts, and each trigger's idempotency key comes
    from its row, so Knock runs it once if the re-run is within Knock's 24 hours). Ends with one
    JSON line of counts by status and `seconds`. With the knock sink, users, objects, tenants and
    subscriptions are sent in bulk and each bulk operation is followed until Knock completed it
    (rows Knock did not apply are `failed` or `queued`); each endpoint is paced by its rate-limit
    tier, and the sink's `rate_per_second` option adds one pace for every call.
    """
    import os

    from ..backfill import Backfill, CsvRows, TableRows
    from ..config import load_config
    from ..sinks import make_sink
    from ..store import DEFAULT_STORE_URL, Store
    from .core import parse_header_options

    if (export is None) == (table is None):
        raise click.UsageError("give either an EXPORT.csv file or --table NAME (not both)")
    cfg = load_config(config)
    cfg.environment(env)
    con = None
    if table is not None:
        if not Path(db).exists():
            raise click.UsageError(f"no DuckDB database at {db}; load an export first with `workbench load`")
        con = _connect(db, read_only=True)
        try:
            source = TableRows(con, table)
        except BaseException:
            con.close()
            raise
    else:
        source = CsvRows(export)  # a file that is not an export is refused before anything is written
    store = None
    try:
        store = Store(store_url or DEFAULT_STORE_URL)
        sink = make_sink(cfg.environment(env).sink, store, os.environ)
        job = Backfill(
            cfg,
            env,
            store,
            sink,
            event=event,
            headers=parse_header_options(headers),
            batch_size=batch_size,
            bulk=bulk,
        )
        missing = job.missing_columns(source.columns)
        if missing:
            click.echo(
                "Warning: clay.body_template names columns this export does not have: "
                + ", ".join(repr(c) for c in missing),
                err=True,
            )
        summary = job.run(source, failures=failures, limit=limit, progress=progress)
    finally:
        source.close()
        if con is not None:
            con.close()
        if store is not None:
            store.close()
    click.echo(json.dumps(summary.to_dict()))
    if summary.interrupted:
        click.echo("Interrupted: run the same command again to complete the backfill.", err=True)
        raise SystemExit(130)

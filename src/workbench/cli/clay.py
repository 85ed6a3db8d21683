"""Commands over Clay exports: load one into DuckDB, backfill it, and print the HTTP API column set-up."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..config import load_config
from ..errors import WorkbenchError
from ..sinks import make_sink
from ..store import DEFAULT_STORE_URL, Store
from . import main, store_option
from .core import parse_header_options

DEFAULT_DB = "data/workbench.duckdb"


def _connect(db: str, read_only: bool = False):
    import duckdb  # the clay extra: loaded by the commands that read exports

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
    from ..clay import load_export, profile  # the clay extra (DuckDB)

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
    from ..clay import read_columns, setup_text  # the clay extra (DuckDB)

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
@store_option
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
    help="Work in bulk: with the local sink on SQLite, ordinary rows of the export are planned "
    "by DuckDB and written a batch at a time, one log entry a batch; with the knock sink, users, "
    "objects, tenants and subscriptions go through Knock's bulk endpoints (1,000 a call, 429s "
    "waited out). --no-bulk takes every row one by one.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar [default: when on a terminal]."
)
@click.option(
    "--full",
    is_flag=True,
    help="Send every action again, whatever was applied before (workflow triggers that ran for the "
    "same row, mapping and payload only with --retrigger).",
)
@click.option(
    "--retrigger",
    is_flag=True,
    help="Send workflow triggers again even when the same row, mapping and payload triggered before.",
)
@click.option("--plan", "plan_only", is_flag=True, help="Print what a run would do; apply and write nothing.")
def backfill(
    config,
    export,
    env,
    table,
    db,
    event,
    store_url,
    failures,
    limit,
    headers,
    batch_size,
    bulk,
    progress,
    full,
    retrigger,
    plan_only,
):
    """Sync the rows of a Clay EXPORT (or --table) through CONFIG's mappings for --env.

    Each row becomes the body the HTTP API column would POST (the config's clay.body_template)
    and goes through the same engine as live rows with origin `backfill` (no signature check).
    A backfill is a sync: each action is compared with what was last applied to its target (a
    user, an object, a tenant, a subscription, an audience member; a workflow trigger per row,
    mapping and payload), whether by an earlier backfill or a live row, and only what changed
    is sent to the environment's sink; the rest is `unchanged`. Rows skipped by a condition are
    applied by a later run whose mapping applies them. --full sends everything again but
    triggers that ran already, --retrigger those triggers, and --plan prints what a run would do without applying
    anything. Rows that did something or failed are logged as events, in transactions of
    --batch-size rows; with the local sink on SQLite, the ordinary rows of the export are
    planned in bulk by DuckDB and each batch of them is logged as one event that points at its
    rows in the export (path and SHA-256, or table, and row numbers), while failed rows keep
    whole events. Stopping it (Ctrl-C, or even a kill) and running it again completes it
    (with the knock sink, the batch in flight may be sent again: identifies are upserts, and each
    trigger's idempotency key comes from its row, so Knock runs it once if the re-run is within
    Knock's 24 hours). Ends with one JSON line counting rows by what happened: applied,
    unchanged, skipped, no_mapping, invalid, failed, queued, and `seconds`; exits 1 when every
    row failed. With the knock sink, users, objects, tenants and subscriptions are sent in bulk
    and each bulk operation is followed until Knock completed it (rows Knock did not apply are
    `failed` or `queued`); each endpoint is paced by its rate-limit tier, and the sink's
    `rate_per_second` option adds one pace for every call.
    """

    from ..backfill import Backfill, CsvRows, TableRows  # the clay extra (DuckDB)
    from ..backfill.checks import unread_paths
    from ..clay import template_event

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
            full=full,
            retrigger=retrigger,
        )
        missing = job.missing_columns(source.columns)
        if missing:
            click.echo(
                "Warning: clay.body_template names columns this export does not have: "
                + ", ".join(repr(c) for c in missing),
                err=True,
            )
        # Every row has the event of --event or of the template's literal, when either sets one.
        every = event or template_event(cfg.body_template)
        for problem in unread_paths(job.env, source.columns, cfg.body_template, every):
            click.echo(f"Warning: {problem}", err=True)
        if plan_only:
            plan = job.plan(source, limit=limit, progress=progress)
            summary = plan.summary
            click.echo(plan.text())
        else:
            summary = job.run(source, failures=failures, limit=limit, progress=progress)
    finally:
        source.close()
        if con is not None:
            con.close()
        if store is not None:
            store.close()
    click.echo(json.dumps(plan.to_dict() if plan_only else summary.to_dict()))
    if summary.interrupted:
        click.echo("Interrupted: run the same command again to complete the backfill.", err=True)
        raise SystemExit(130)
    if summary.all_failed:
        click.echo(
            f"Every row failed ({summary.rows}): nothing was applied. See the reasons above"
            + (f" and in {failures}" if failures else " (or with --failures FILE)")
            + "; fix the mapping or the export and run again.",
            err=True,
        )
        raise SystemExit(1)

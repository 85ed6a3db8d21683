"""Commands over Clay exports: load one into DuckDB, backfill it, and print the HTTP API column set-up."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import main

DEFAULT_DB = "data/workbench.duckdb"


def _connect(db: str):
    import duckdb

    if db != ":memory:":
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(db)


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

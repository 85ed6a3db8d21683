"""Commands over the core alone: rehearse and schema."""

from __future__ import annotations

import json
import sys

import click

from ..config import load_config
from ..engine import Engine, SourceEvent, new_event_id
from ..schema import config_schema
from ..sinks import DryRunSink
from . import main


def parse_header_options(values) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not `name: value`", param_hint="--header")
        headers[name.strip()] = value.strip()
    return headers


def header_option(fn):
    """`--header/-H 'name: value'`, repeatable; read it with `parse_header_options`."""
    return click.option(
        "--header",
        "-H",
        "headers",
        multiple=True,
        metavar="'NAME: VALUE'",
        help="A request header the mapping can read as headers.<name>; repeatable.",
    )(fn)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("body", type=click.File("rb"))
@click.option("--env", "env", required=True, help="Environment of the config to use, e.g. development.")
@header_option
def rehearse(config, body, env, headers):
    """Show what BODY would do under CONFIG, without sending anything.

    BODY is a JSON file as the Clay HTTP API column would POST it (`-` reads stdin). Prints
    the outcome as the receiver would answer, with payloads whole, using a dry-run sink and no
    idempotency store; the signature is not checked. Exit 0 when it ran, 2 on usage or config errors.
    """
    cfg = load_config(config)
    engine = Engine(cfg, env, DryRunSink())
    event = SourceEvent(body.read(), parse_header_options(headers), origin="live")
    outcome = engine.process(event)
    click.echo(json.dumps(outcome.to_dict(new_event_id()), indent=2, ensure_ascii=False))


@main.command()
def schema():
    """Print the JSON Schema of the mapping config format."""
    json.dump(config_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")

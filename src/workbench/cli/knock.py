"""`workbench knock pull|push|rehearse`: a config to and from a Knock source, through Knock's management API."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import dump_config, load_config, save_config
from ..deploy import DEFAULT_BASE_URL, ManagementClient, plan_push, pull, push, rehearse
from . import main
from .core import header_option, parse_header_options


def base_url_option(fn):
    return click.option(
        "--base-url",
        default=DEFAULT_BASE_URL,
        show_default=True,
        envvar="KNOCK_MANAGEMENT_URL",
        help="Knock's management API (also KNOCK_MANAGEMENT_URL).",
    )(fn)


def env_option(fn):
    return click.option(
        "--env", "env", required=True, help="The environment, in the config and in Knock (its slug)."
    )(fn)


@main.group()
def knock():
    """Pull and push Knock source configurations through Knock's management API.

    Authenticates with a service token from KNOCK_SERVICE_TOKEN. A config Knock's sources cannot run
    is refused before anything is sent, each thing with its location and what to do.
    """


@knock.command("pull")
@click.argument("source_key")
@env_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the config here (an existing config is updated: only this environment and what Knock holds change).",
)
@base_url_option
def pull_command(source_key, env, out, base_url):
    """Read a Knock source's environment as a workbench config (printed, or written to --out).

    Every setting and mapping is carried over; what the workbench has no counterpart for (a
    preprocess script, verification, mappings it cannot express) is kept in the config's `knock`
    section and listed here, so a push sends it back unchanged.
    """
    base = load_config(out).raw if out is not None and out.exists() else None
    with ManagementClient(base_url=base_url) as client:
        pulled = pull(client, source_key, env, base)
    for line in pulled.kept:
        click.echo(f"kept: {line}", err=True)
    for line in pulled.notes:
        click.echo(f"note: {line}", err=True)
    if out is None:
        click.echo(dump_config(pulled.config), nl=False)
    else:
        save_config(pulled.config, out)  # written whole or not at all
    mappings = len(pulled.config["environments"][env].get("mappings", []))
    summary = {"source": source_key, "environment": env, "mappings": mappings, "kept": len(pulled.kept)}
    if out is not None:
        summary["out"] = str(out)
    click.echo(json.dumps(summary), err=out is None)


@knock.command("push")
@click.argument("config", type=click.Path(dir_okay=False))
@env_option
@click.option(
    "--source-key", help="The Knock source (default: the config's knock.source_key, else its source)."
)
@click.option(
    "--dry-run", is_flag=True, help="Print the request body and the difference from Knock; send nothing."
)
@base_url_option
def push_command(config, env, source_key, dry_run, base_url):
    """Translate CONFIG's environment into Knock's source format and upsert it.

    Conditions, templates, `first` lists, coercions, literal values read from the event,
    content-hash idempotency keys, windows other than 24 h and workflows_cancel only run on the
    workbench's receiver: such a config is refused before anything is sent.
    """
    data = load_config(config).raw
    with ManagementClient(base_url=base_url) as client:
        plan = plan_push(client, data, env, source_key)
        if dry_run:
            click.echo(json.dumps(plan.body, indent=2, ensure_ascii=False))
            click.echo(f"Difference from Knock's source `{plan.key}` ({env}):", err=True)
            click.echo(plan.render(), err=True)
            return
        click.echo(plan.render(), err=True)
        source = push(client, plan)
    held = source["environment_settings"].get(env, {})
    click.echo(
        json.dumps(
            {
                "source": plan.key,
                "environment": env,
                "pushed": True,
                "mappings": len(held.get("mappings", [])),
            }
        )
    )


@knock.command("rehearse")
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("body", type=click.File("rb"))
@env_option
@click.option(
    "--source-key", help="The Knock source (default: the config's knock.source_key, else its source)."
)
@header_option
@base_url_option
def rehearse_command(config, body, env, source_key, headers, base_url):
    """Run BODY through Knock's own mappings and through the workbench, and show both.

    Prints JSON with Knock's result (its rehearse answer and its log's actions), the workbench's
    `rehearse` outcome, and each difference field by field. Knock does not rehearse in production.
    """
    data = load_config(config).raw
    with ManagementClient(base_url=base_url) as client:
        result = rehearse(client, data, env, body.read(), parse_header_options(headers), source_key)
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    if result.differences:
        click.echo("Differences between Knock and the workbench:", err=True)
        for line in result.differences:
            click.echo(f"  - {line}", err=True)
    else:
        click.echo("Knock and the workbench agree on this body.", err=True)

"""Commands around the receiver and its event log."""

from __future__ import annotations

import glob
import json
import os
import socket
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from ..config import ConfigSet, load_config
from ..errors import WorkbenchError
from ..receiving import build_service
from ..store import DEFAULT_STORE_URL, Store
from ..store.db import create_private
from ..store.migrate import current, upgrade
from . import main, store_option


@main.command()
@click.argument("configs", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free)."
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Gunicorn workers.")
@click.option(
    "--retry-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="Seconds between passes that retry queued actions.",
)
@click.option(
    "--access-log", type=click.Path(dir_okay=False), help="Write gunicorn's access log here (- for stderr)."
)
@click.option(
    "--write-behind/--no-write-behind",
    default=True,
    show_default=True,
    help="On a SQLite store: journal each row, answer, then log rows in batches (see --batch-pause), when "
    "the answer cannot depend on the store (local sink, no idempotency, no deletes). Rows are kept "
    "from the moment they are journaled; admin reads wait for the batches. --no-write-behind logs "
    "every row in its own transactions before answering.",
)
@click.option(
    "--batch-pause",
    default=0.02,
    show_default=True,
    type=click.FloatRange(min=0.001, max=60),
    help="Seconds write-behind gathers rows into one transaction (reads of the log wait for it, up to 10 s).",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="Seconds a client may take to send a request's body; a slower one is answered 408 and "
    "disconnected, and nothing of it is stored.",
)
def serve(configs, store_url, host, port, access_log, **options):
    """Serve the receiver under gunicorn: POST rows to /sources/<source>/<environment>.

    CONFIG files default to mappings/clay.json; they are reloaded when they change. Signing
    secrets come from the environment variables the configs name; the admin API and the
    event-log page at /sources/<source>/<environment> need WORKBENCH_ADMIN_TOKEN.
    """

    from ..receiver.serving import serve as run  # gunicorn: loaded only to serve

    paths = list(configs) or ["mappings/clay.json"]
    for path in paths:
        config = load_config(path)  # refuse a bad config before any worker starts
        for env in config.environments.values():
            missing = env.missing_secrets(os.environ)
            if missing:
                click.echo(
                    f"Warning: {config.source}/{env.name} refuses every request until "
                    f"{', '.join(missing)} is set",
                    err=True,
                )
    problem = _cannot_listen(host, port)
    if problem:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {problem}; is another receiver (or `make serve`) "
            "running there? Choose another port with --port (0: any free one)"
        )
    if access_log and access_log != "-":
        create_private(Path(access_log).resolve())  # it names every row's sender and time
    store_url = store_url or DEFAULT_STORE_URL
    store = Store(store_url)  # create the tables once, before the workers race for it
    if options["write_behind"]:
        _log_left_journals(paths, store)
    store.close()
    if not os.environ.get("WORKBENCH_ADMIN_TOKEN"):
        click.echo(
            "Note: WORKBENCH_ADMIN_TOKEN is not set, so the admin API and event-log page are off", err=True
        )
    shown = make_url(store_url).render_as_string(hide_password=True)
    click.echo(f"Receiving at http://{host}:{port}/sources/<source>/<environment> (store {shown})", err=True)
    # The other options (workers, retry interval, write-behind, batch pause, body timeout) as given.
    run(paths, store_url, host=host, port=port, accesslog=access_log, **options)


def _log_left_journals(paths: list[str], store) -> None:
    """Rows a receiver answered but had not logged when it was killed: logged now, once."""
    build_service(ConfigSet(paths), store, announce=lambda text: click.echo(text, err=True)).close()


def _cannot_listen(host: str, port: int) -> str | None:
    """Why gunicorn could not listen on (host, port), or None. Checked up front: gunicorn itself
    retries for five seconds, after the banner saying where it receives."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror})"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


# -- the event log: replay and prune ------------------------------------------------------


def _config_paths(given: tuple[str, ...]) -> list[str]:

    paths = list(given) or sorted(glob.glob("mappings/*.json"))
    if not paths:
        raise click.UsageError("no config found: give --config PATH (default mappings/*.json)")
    return paths


@main.command()
@click.argument("event_ids", nargs=-1)
@store_option
@click.option(
    "--config",
    "configs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Mapping config of the events' sources (repeatable) [default: mappings/*.json].",
)
@click.option(
    "--status",
    type=click.Choice(["queued", "failed", "received"]),
    help="Replay every event in this status (received: events whose processing never finished).",
)
@click.option("--source", help="With --status: only this source.")
@click.option("--env", "environment", help="With --status: only this environment.")
@click.option("--limit", type=click.IntRange(min=1), help="With --status: at most this many events.")
def replay(event_ids, store_url, configs, status, source, environment, limit):
    """Re-run the actions of logged events that did not succeed (earlier successes are not re-run).

    Give EVENT_IDs, or --status to pick events from the log. Fix the mapping config first when
    an action failed because of it. Prints one line per event, then a JSON summary line; exits
    with 1 when an event given is not in the log or could not be replayed.
    """

    if bool(event_ids) == bool(status):
        raise click.UsageError("give EVENT_IDs or --status (not both)")
    if (source or environment or limit) and not status:
        raise click.UsageError("--source, --env and --limit go with --status")
    store = Store(store_url or DEFAULT_STORE_URL)
    try:
        # Rows that receivers answered but have not logged yet are logged (a stopped
        # receiver's) or waited for (a running one's) first.
        service = build_service(ConfigSet(_config_paths(configs)), store)
        service.settle()
        ids = list(event_ids) or store.find_events(status, source, environment, limit)
        counts: dict[str, int] = {}
        for event_id in ids:
            before = store.get_event(event_id)
            if before is None:
                click.echo(f"{event_id}: not in the log", err=True)
                counts["not_found"] = counts.get("not_found", 0) + 1
                continue
            try:
                after = service.replay(event_id)
            except WorkbenchError as exc:  # e.g. its source is not among the configs: go on with the rest
                click.echo(f"{event_id}: not replayed: {exc}", err=True)
                counts["error"] = counts.get("error", 0) + 1
                continue
            counts[after["status"]] = counts.get(after["status"], 0) + 1
            line = f"{event_id}: {before['status']} -> {after['status']}"
            problems = [
                f"{a['action']}: {a['error']}"
                for a in after["actions"]
                if a["status"] != "success" and a["error"]
            ]
            click.echo(line + (f" ({'; '.join(problems)})" if problems else ""))
        missed = counts.get("not_found", 0) + counts.get("error", 0)
        click.echo(json.dumps({"replayed": len(ids) - missed, "statuses": counts}))
    finally:
        store.close()
    if missed:
        raise SystemExit(1)


@main.command()
@store_option
@click.option(
    "--days", default=30.0, show_default=True, type=click.FloatRange(min=0), help="Keep events this recent."
)
def prune(store_url, days):
    """Delete events (and their actions) older than --days, and expired idempotency keys."""

    store = Store(store_url or DEFAULT_STORE_URL)
    try:
        deleted = store.prune(days)
    finally:
        store.close()
    click.echo(json.dumps({"deleted_events": deleted, "days": days}))


@main.command()
@store_option
def migrate(store_url):
    """Create the event-log tables, or upgrade them to this version's schema (Alembic).

    Every command that opens the store does this on its own; run it to upgrade ahead of a
    deploy. Safe while receivers are running. Prints one JSON line.
    """

    store = Store(store_url or DEFAULT_STORE_URL, create=False)
    try:
        migrated = upgrade(store.engine)
        with store.engine.connect() as conn:
            revision = current(conn)
    finally:
        store.close()
    click.echo(json.dumps({"revision": revision, "migrated": migrated}))

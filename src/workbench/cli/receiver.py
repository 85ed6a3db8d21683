"""Commands around the receiver and its event log."""

from __future__ import annotations

import os

import click

from . import main


@main.command()
@click.argument("configs", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--store",
    "store_url",
    envvar="WORKBENCH_STORE_URL",
    help="Event-log database URL [default: sqlite:///data/workbench.sqlite, or $WORKBENCH_STORE_URL].",
)
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
def serve(configs, store_url, host, port, workers, retry_interval, access_log):
    """Serve the receiver under gunicorn: POST rows to /sources/<source>/<environment>.

    CONFIG files default to mappings/clay.json; they are reloaded when they change. Signing
    secrets come from the environment variables the configs name; the admin API and the
    event-log page at /sources/<source>/<environment> need WORKBENCH_ADMIN_TOKEN.
    """
    from sqlalchemy.engine import make_url

    from ..config import load_config
    from ..receiver.serving import serve as run
    from ..store import DEFAULT_STORE_URL, Store

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
    store_url = store_url or DEFAULT_STORE_URL
    Store(store_url).engine.dispose()  # create the tables once, before the workers race for it
    if not os.environ.get("WORKBENCH_ADMIN_TOKEN"):
        click.echo(
            "Note: WORKBENCH_ADMIN_TOKEN is not set, so the admin API and event-log page are off", err=True
        )
    click.echo(
        f"Receiving at http://{host}:{port}/sources/<source>/<environment> (store {store_url})", err=True
    )
    run(
        paths,
        store_url,
        host=host,
        port=port,
        workers=workers,
        retry_interval=retry_interval,
        accesslog=access_log,
    )

"""`workbench` command line: thin commands over the library."""

from __future__ import annotations

import sys

import click

from ..errors import WorkbenchError


class WorkbenchGroup(click.Group):
    """Turns the project's own errors into a clear message and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WorkbenchError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=WorkbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clay-knock-workbench", prog_name="workbench")
def main():
    """Clay → Knock source workbench.

    Verify, map and apply rows that Clay tables POST, as Knock actions: rehearse a body,
    serve the receiver, load Clay exports, backfill them, and inspect the event log.
    """


# Options several commands share, declared once.
store_option = click.option(
    "--store",
    "store_url",
    envvar="WORKBENCH_STORE_URL",
    help="Event-log database URL [default: sqlite:///data/workbench.sqlite, or $WORKBENCH_STORE_URL].",
)


def _register():
    from . import core  # noqa: F401

    for name in ("receiver", "clay", "knock"):
        try:
            __import__(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise


_register()

"""`portside wait`: block until containers stop; print their exit codes."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command("wait")
@click.argument("containers", nargs=-1, required=True)
def wait(containers: tuple[str, ...]) -> None:
    """Wait for one or more containers to stop, printing their exit codes."""
    engine = get_engine()
    for ref in containers:
        click.echo(engine.wait(ref))

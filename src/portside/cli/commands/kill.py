"""`portside kill`: send a signal (KILL by default) to a container's init."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command()
@click.option("-s", "--signal", "sig", default="KILL", show_default=True)
@click.argument("containers", nargs=-1, required=True)
def kill(containers: tuple[str, ...], sig: str) -> None:
    """Kill one or more running containers."""
    engine = get_engine()
    for ref in containers:
        engine.kill(ref, sig)
        click.echo(ref)

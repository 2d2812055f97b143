"""`portside unpause`: thaw a paused container."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command()
@click.argument("containers", nargs=-1, required=True)
def unpause(containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    engine = get_engine()
    for ref in containers:
        engine.unpause(ref)
        click.echo(ref)

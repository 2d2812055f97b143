"""`portside pause`: freeze every process of a container (cgroup freezer)."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command()
@click.argument("containers", nargs=-1, required=True)
def pause(containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    engine = get_engine()
    for ref in containers:
        engine.pause(ref)
        click.echo(ref)

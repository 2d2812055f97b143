"""`portside diff CONTAINER`: what the container changed in its image, as docker prints it."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command()
@click.argument("container")
def diff(container: str) -> None:
    """List the files the container added (A), changed (C) and deleted (D)."""
    from portside.engine.commit import container_changes

    for change in container_changes(get_engine(), container):
        click.echo(f"{change.kind.value} {change.path}")

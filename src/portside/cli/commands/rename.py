"""`portside rename`: give a container a new name."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command()
@click.argument("container")
@click.argument("name")
def rename(container: str, name: str) -> None:
    """Rename a container."""
    get_engine().rename(container, name)

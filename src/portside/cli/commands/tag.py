"""`portside tag SOURCE TARGET...`: add names to an image."""

from __future__ import annotations

import click

from portside.cli.commands.image import open_store


@click.command()
@click.argument("source")
@click.argument("targets", nargs=-1, required=True)
def tag(source: str, targets: tuple[str, ...]) -> None:
    """Add names to a local image."""
    store = open_store()
    for target in targets:
        store.tag(source, target)

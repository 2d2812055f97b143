"""`portside top`: the container's processes, as ps shows them on the host."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
def top(container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    click.echo(get_engine().top(container, list(ps_args)), nl=False)

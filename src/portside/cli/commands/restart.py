"""`portside restart`: stop (if running), then start."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds before SIGKILL.")
@click.argument("containers", nargs=-1, required=True)
def restart(containers: tuple[str, ...], timeout: int | None) -> None:
    """Restart one or more containers."""
    engine = get_engine()
    for ref in containers:
        engine.restart(ref, timeout)
        click.echo(ref)

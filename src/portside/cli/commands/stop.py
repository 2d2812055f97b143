"""`portside stop`: the stop signal, then SIGKILL after the timeout."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds before SIGKILL.")
@click.argument("containers", nargs=-1, required=True)
def stop(containers: tuple[str, ...], timeout: int | None) -> None:
    """Stop one or more running containers."""
    engine = get_engine()
    for ref in containers:
        engine.stop(ref, timeout)
        click.echo(ref)

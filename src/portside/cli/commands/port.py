"""`portside port`: published ports (none are published until the bridge network exists)."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
def port(container: str, private_port: str | None) -> None:
    """List port mappings of a container."""
    doc = get_engine().record(container)
    for spec in doc["options"].get("publish") or []:
        click.echo(f"{spec} (recorded; publishing comes with the bridge network)")

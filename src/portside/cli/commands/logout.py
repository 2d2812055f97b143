"""`portside logout REGISTRY`: forget stored credentials."""

from __future__ import annotations

import click

from portside.cli.commands.login import _registry_host


@click.command()
@click.option("--all", "-a", "all_registries", is_flag=True, help="Remove all credentials.")
@click.argument("registry", required=False)
def logout(registry: str | None, all_registries: bool) -> None:
    """Log out of a registry."""
    from portside.config import remove_credentials
    from portside.errors import NotFound

    if all_registries:
        remove_credentials(None)
        click.echo("Removed login credentials for all registries")
        return
    if not registry:
        raise click.UsageError("logout needs a registry (or --all)")
    host = _registry_host(registry)
    if not remove_credentials(host):
        raise NotFound(f"not logged into {host}")
    click.echo(f"Removed login credentials for {host}")

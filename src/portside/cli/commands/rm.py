"""`portside rm`: remove containers (and with -v their anonymous volumes)."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine
from portside.errors import NotFound, PortsideError


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.option("-v", "--volumes", is_flag=True, help="Remove its anonymous volumes.")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove every container.")
@click.argument("containers", nargs=-1)
def rm(containers: tuple[str, ...], force: bool, volumes: bool, all_: bool) -> None:
    """Remove one or more containers."""
    engine = get_engine()
    refs = list(containers) or ([i.id for i in engine.list(all=True)] if all_ else [])
    if not refs and not all_:
        raise click.UsageError("rm needs at least one container")
    failed: PortsideError | None = None
    for ref in refs:
        try:
            engine.remove(ref, force=force, volumes=volumes)
            click.echo(ref)
        except NotFound as err:
            if not force:
                click.echo(f"Error: {err}", err=True)
                failed = err
        except PortsideError as err:
            click.echo(f"Error: {err}", err=True)
            failed = err
    if failed is not None:
        raise SystemExit(1 if isinstance(failed, NotFound) else failed.exit_code)

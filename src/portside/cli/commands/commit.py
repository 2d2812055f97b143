"""`portside commit [OPTIONS] CONTAINER [REF]`: a container's changes as a new image."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine
from portside.cli.commands.image import change_option


@click.command()
@change_option
@click.option("--message", "-m", default=None, help="Commit message for the history.")
@click.option("--author", "-a", default=None, help="Author of the image.")
@click.option(
    "--pause/--no-pause",
    "-p",
    default=True,
    help="Pause a running container while its changes are read (default: pause).",
)
@click.option("--quiet", "-q", is_flag=True, help="Accepted for podman compatibility.")
@click.argument("container")
@click.argument("reference", required=False)
def commit(
    changes: tuple[str, ...],
    message: str | None,
    author: str | None,
    pause: bool,
    quiet: bool,
    container: str,
    reference: str | None,
) -> None:
    """Create an image from a container's changes; prints the image ID."""
    from portside.engine.commit import commit_container

    record = commit_container(
        get_engine(),
        container,
        reference,
        changes=changes,
        message=message,
        author=author,
        pause=pause,
    )
    click.echo(f"sha256:{record.id}")

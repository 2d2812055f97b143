"""`portside image mount REF` / `portside image unmount REF`: an image's tree, read-only."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command("mount")
@click.argument("reference")
def image_mount(reference: str) -> None:
    """Mount the image's layers read-only and print the path (unpacking them if needed)."""
    from portside.engine.commit import mount_image

    click.echo(str(mount_image(get_engine(), reference)))


@click.command("unmount")
@click.argument("reference")
def image_unmount(reference: str) -> None:
    """Unmount what `image mount` mounted for the image."""
    from portside.engine.commit import unmount_image

    unmount_image(get_engine(), reference)

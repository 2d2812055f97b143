"""`portside save [-o FILE] [--format docker-archive|oci-archive|oci-dir] IMAGE...`."""

from __future__ import annotations

import click

from portside.cli.commands.image import open_store


@click.command()
@click.option(
    "--output", "-o", default=None, help="Write to FILE (or DIR for oci-dir), not stdout."
)
@click.option(
    "--format",
    "fmt",
    default="docker-archive",
    show_default=True,
    type=click.Choice(["docker-archive", "oci-archive", "oci-dir", "docker", "oci"]),
    help="Archive format (docker = docker-archive, oci = oci-archive).",
)
@click.argument("images", nargs=-1, required=True)
def save(output: str | None, fmt: str, images: tuple[str, ...]) -> None:
    """Save one or more images to an archive (docker save / podman save)."""
    from portside.images.saveload import save_images

    save_images(open_store(), list(images), output, fmt)

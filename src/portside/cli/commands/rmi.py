"""`portside rmi IMAGE...`: untag or remove images, then free unreferenced blobs."""

from __future__ import annotations

import click

from portside.cli.commands.image import open_store
from portside.errors import PortsideError


@click.command()
@click.option("--force", "-f", is_flag=True, help="Remove even if in use or multiply tagged.")
@click.option("--all", "-a", "all_images", is_flag=True, help="Remove all images.")
@click.argument("images", nargs=-1)
def rmi(images: tuple[str, ...], force: bool, all_images: bool) -> None:
    """Remove one or more images."""
    # docker's rule: an image a container still uses is refused (unless --force)
    from portside.engine.local import register_image_users

    register_image_users()
    store = open_store()
    targets = list(images)
    if all_images:
        targets = [str(r.manifest_digest) for r in store.images()]
    if not targets:
        raise click.UsageError("rmi needs at least one image (or --all)")
    first_error: PortsideError | None = None
    for text in targets:
        try:
            untagged, deleted = store.remove(text, force=force or all_images)
        except PortsideError as err:
            if first_error is None:
                first_error = err
            if len(targets) > 1:
                click.echo(f"Error: {err}", err=True)
            continue
        for name in untagged:
            click.echo(f"Untagged: {name}")
        for ident in deleted:
            click.echo(f"Deleted: {ident}")
    store.gc()
    if first_error is not None:
        raise first_error

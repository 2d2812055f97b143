"""`portside load [-i FILE] [-q]`: load a docker-archive or oci-archive, found out by content."""

from __future__ import annotations

import click

from portside.cli.commands.image import open_store


@click.command()
@click.option("--input", "-i", "input_path", default=None, help="Read from FILE, not stdin.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the image IDs.")
@click.argument("names", nargs=-1)
def load(input_path: str | None, quiet: bool, names: tuple[str, ...]) -> None:
    """Load images from a (maybe compressed) docker-archive or oci-archive."""
    from portside.images.saveload import load_archive

    store = open_store()
    loaded = load_archive(store, input_path)
    for item in loaded:
        for extra in names:  # podman's `load [NAME]`: also tag the image(s) with it
            store.set_name(extra, item.image.manifest_digest)
        if quiet:
            click.echo(f"sha256:{item.image.id}")
        elif item.names or names:
            for name in [*item.names, *names]:
                click.echo(f"Loaded image: {name}")
        else:
            click.echo(f"Loaded image ID: sha256:{item.image.id}")

"""`portside push IMAGE [DEST]`: send a stored image to a registry."""

from __future__ import annotations

import click

from portside.cli.commands.image import (
    creds_option,
    make_progress,
    make_resolver,
    open_store,
    tls_verify_option,
)
from portside.errors import InvalidArgument


@click.command()
@click.option(
    "--format",
    "-f",
    "manifest_format",
    type=click.Choice(["oci", "docker", "v2s2"]),
    default=None,
    help="Manifest format to push (default: as stored).",
)
@click.option(
    "--compression-format",
    type=click.Choice(["gzip", "zstd", "none"]),
    default=None,
    help="Recompress layers before pushing.",
)
@click.option(
    "--chunk-size", type=int, default=None, help="Upload blobs in PATCH chunks of N bytes."
)
@click.option("--max-parallel", default=3, show_default=True, type=click.IntRange(1, 64))
@click.option("--quiet", "-q", is_flag=True)
@click.option("--all", "all_platforms", is_flag=True, help="Push the whole index (every platform).")
@click.option("--digestfile", default=None, help="Write the pushed manifest digest here.")
@creds_option
@tls_verify_option
@click.argument("image")
@click.argument("destination", required=False)
def push(
    image: str,
    destination: str | None,
    manifest_format: str | None,
    compression_format: str | None,
    chunk_size: int | None,
    max_parallel: int,
    quiet: bool,
    all_platforms: bool,
    digestfile: str | None,
    creds: str | None,
    tls_verify: bool | None,
) -> None:
    """Push an image to a registry."""
    from portside.images.copy import CopyOptions
    from portside.images.push import push_image

    if chunk_size is not None and chunk_size <= 0:
        raise InvalidArgument("--chunk-size must be positive")
    store = open_store()
    resolver = make_resolver(tls_verify, creds, max_connections=max_parallel + 2)
    progress = make_progress(quiet)
    fmt = "docker" if manifest_format == "v2s2" else manifest_format
    try:
        options = CopyOptions(
            max_parallel=max_parallel,
            manifest_format=fmt,
            compression=compression_format,
            progress=progress,
        )
        result = push_image(store, image, destination, resolver, options, chunk_size, all_platforms)
    finally:
        if progress is not None:
            progress.close()
        resolver.close()
    if digestfile:
        with open(digestfile, "w") as f:
            f.write(str(result.digest))
    if not quiet:
        click.echo(str(result.digest))

"""`portside pull IMAGE`: fetch an image (or the host's platform of an index) into the store."""

from __future__ import annotations

import click

from portside.cli.commands.image import (
    creds_option,
    make_progress,
    make_resolver,
    open_store,
    tls_verify_option,
)


@click.command()
@click.option("--platform", default=None, help="os/arch[/variant] to pick from an index.")
@click.option("--all-platforms", is_flag=True, help="Pull every image of an index.")
@click.option("--max-parallel", default=3, show_default=True, type=click.IntRange(1, 64))
@click.option("--quiet", "-q", is_flag=True, help="Print only the image ID.")
@click.option(
    "--unpack/--no-unpack",
    default=True,
    show_default=True,
    help="Unpack the layers into the layer store while downloading (what `run` uses).",
)
@creds_option
@tls_verify_option
@click.argument("image")
def pull(
    image: str,
    platform: str | None,
    all_platforms: bool,
    max_parallel: int,
    quiet: bool,
    unpack: bool,
    creds: str | None,
    tls_verify: bool | None,
) -> None:
    """Pull an image from a registry."""
    from portside.images.copy import CopyOptions
    from portside.images.pull import pull_image

    if platform:
        from portside.oci.platform import parse_platform

        parse_platform(platform)  # a malformed --platform fails before any download
    if image.startswith("docker://"):
        image = image[len("docker://") :]
    store = open_store()
    resolver = make_resolver(tls_verify, creds, max_connections=max_parallel + 2)
    progress = make_progress(quiet)
    layers = None
    if unpack:
        from portside.cli.commands.create import get_engine

        layers = get_engine().layers  # the engine's own store and driver: `run` finds them
    try:
        options = CopyOptions(
            platform=platform,
            all_platforms=all_platforms,
            max_parallel=max_parallel,
            progress=progress,
        )
        record, _ = pull_image(store, image, resolver, options, layers)
    finally:
        if progress is not None:
            progress.close()
        resolver.close()
    click.echo(record.id)
    # Nothing is left to free: spare the interpreter's final full collection (~30 ms).
    import gc

    gc.freeze()

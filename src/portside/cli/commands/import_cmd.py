"""`portside import ROOTFS.tar[.gz] [REF] [--change 'CMD ["sh"]' ...] [--message MSG]`."""

from __future__ import annotations

import click

from portside.cli.commands.image import change_option, open_store


@click.command(name="import")
@change_option
@click.option("--message", "-m", default=None, help="Commit message for the history.")
@click.option("--platform", default=None, help="os/arch[/variant] to record (default: host).")
@click.option("--quiet", "-q", is_flag=True, help="Accepted for podman compatibility.")
@click.argument("tarball")
@click.argument("reference", required=False)
def import_image(
    changes: tuple[str, ...],
    message: str | None,
    platform: str | None,
    quiet: bool,
    tarball: str,
    reference: str | None,
) -> None:
    """Create an image from a root filesystem tarball (file or - for stdin)."""
    from portside.images.saveload import import_tarball

    store = open_store()
    record = import_tarball(store, tarball, reference, list(changes), message, platform)
    click.echo(f"sha256:{record.id}")

"""`portside system ...`: check and df (other components may add subcommands)."""

from __future__ import annotations

import click

from portside.cli.commands.image import human_size, open_store
from portside.errors import PortsideError


@click.group()
def system() -> None:
    """Manage portside's state."""


class CheckFailed(PortsideError):
    exit_code = 1


@system.command("check")
@click.option("--repair", "-r", is_flag=True, help="Remove what is broken.")
@click.option("--quick", is_flag=True, help="Skip rehashing every blob.")
def check(repair: bool, quick: bool) -> None:
    """Verify every blob and image record; report (and with --repair remove) what is broken."""
    store = open_store()
    problems: list[str] = []
    if not quick:
        for p in store.content.verify_all(repair=repair):
            problems.append(f"blob {p.digest or p.path}: {p.reason}")
    problems += store.check(repair=repair)
    if repair:
        report = store.gc(keep_ingests=False)
        if report.ingests_removed:
            click.echo(f"removed {report.ingests_removed} unfinished downloads")
    for line in problems:
        click.echo(("repaired: " if repair else "") + line)
    if problems and not repair:
        raise CheckFailed(f"{len(problems)} problem(s) found; run `portside system check --repair`")
    if not problems:
        click.echo("no problems found")


@system.command("df")
@click.option("--verbose", "-v", is_flag=True, help="Per image sizes.")
def df(verbose: bool) -> None:
    """Space used by images (blobs shared between images counted once)."""
    import json

    store = open_store()
    content = store.content
    records = store.images()
    blob_sizes: dict[str, int] = {str(d): n for d, n in content.blobs()}
    refcount: dict[str, int] = {}
    per_image: dict[str, set[str]] = {}
    for rec in records:
        blobs = {str(rec.manifest_digest)}
        try:
            manifest = json.loads(content.read_bytes(rec.manifest_digest, verify=False))
            blobs.add(manifest["config"]["digest"])
            blobs.update(layer["digest"] for layer in manifest.get("layers") or [])
        except Exception:
            pass
        per_image[rec.id] = blobs
        for b in blobs:
            refcount[b] = refcount.get(b, 0) + 1
    used = {b for s in per_image.values() for b in s}
    total = sum(blob_sizes.get(b, 0) for b in used)
    active = 0  # containers are the engine's; nothing holds images yet from here
    unused = sum(size for d, size in blob_sizes.items() if d not in used)
    click.echo(f"{'TYPE':<14}{'TOTAL':>8}{'ACTIVE':>8}{'SIZE':>12}{'RECLAIMABLE':>14}")
    click.echo(
        f"{'Images':<14}{len(records):>8}{active:>8}{human_size(total):>12}{human_size(total):>14}"
    )
    click.echo(
        f"{'Unreferenced':<14}{'':>8}{'':>8}{human_size(unused):>12}{human_size(unused):>14}"
    )
    if verbose:
        click.echo("")
        click.echo(f"{'IMAGE ID':<14}{'SIZE':>12}{'SHARED':>12}{'UNIQUE':>12}  NAMES")
        for rec in records:
            blobs = per_image[rec.id]
            shared = sum(blob_sizes.get(b, 0) for b in blobs if refcount[b] > 1)
            unique = sum(blob_sizes.get(b, 0) for b in blobs if refcount[b] == 1)
            click.echo(
                f"{rec.short_id:<14}{human_size(shared + unique):>12}{human_size(shared):>12}"
                f"{human_size(unique):>12}  {', '.join(rec.names) or '<none>'}"
            )

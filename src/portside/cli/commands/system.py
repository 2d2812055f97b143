"""`portside system ...`: check, prune and df (other components may add subcommands)."""

from __future__ import annotations

import os
from pathlib import Path

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


@system.command("prune")
@click.option("--all", "-a", "all_images", is_flag=True, help="Also every image no container uses.")
@click.option("--force", "-f", is_flag=True, help="Do not ask (always true here).")
def prune(all_images: bool, force: bool) -> None:
    """Remove stopped containers, unused networks, dangling images, and what crashed
    containers left of their networks (namespaces, veths, leases, firewall rules)."""
    from portside.cli.commands.create import get_engine

    engine = get_engine()
    for cid in engine.prune():
        click.echo(f"Deleted container {cid}")
    live = {d["id"] for d in engine.db.all()}
    report = engine.network.sweep(live)
    for kind, items in (
        ("network namespace", report.netns),
        ("network attachment", report.attachments),
        ("veth", report.veths),
        ("IPAM lease", report.leases),
        ("firewall rule", report.rules),
    ):
        for item in items:
            click.echo(f"Deleted {kind} {item}")
    for err in report.errors:
        click.echo(f"warning: {err}", err=True)
    for name in engine.network.remove_unused_networks(engine.db.all()):
        click.echo(f"Deleted network {name}")
    store = open_store()
    removed = store.prune(all_images=all_images)
    freed = store.gc().freed
    for rec in removed:
        click.echo(f"Deleted image {rec.id}")
    if removed or freed:
        click.echo(f"Total reclaimed space: {human_size(freed)}", err=True)


@system.command("df")
@click.option("--verbose", "-v", is_flag=True, help="Per image sizes.")
def df(verbose: bool) -> None:
    """Space used by images, unpacked layers, containers and volumes; what several
    images or containers share is counted once."""
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
    unused = sum(size for d, size in blob_sizes.items() if d not in used)

    from portside.cli.commands.create import get_engine

    engine = get_engine()
    containers = engine.list(all=True)
    in_use = {c.image_id for c in containers}
    active = sum(1 for rec in records if rec.id in in_use)
    reclaimable = sum(
        blob_sizes.get(b, 0)
        for b in used
        if not any(b in per_image[i] for i in in_use if i in per_image)
    )
    running = sum(1 for c in containers if c.state.running)
    storage = engine.layers.df()  # unpacked layers, each file counted once however shared
    volumes = engine.volumes.list()
    volume_users = {c for v in volumes for c in engine.volumes.users(v["Name"])}
    volume_bytes = sum(_du(Path(v["Mountpoint"])) for v in volumes)

    def row(kind: str, count: object, act: object, size: int, free: int) -> None:
        click.echo(f"{kind:<16}{count!s:>8}{act!s:>8}{human_size(size):>12}{human_size(free):>14}")

    click.echo(f"{'TYPE':<16}{'TOTAL':>8}{'ACTIVE':>8}{'SIZE':>12}{'RECLAIMABLE':>14}")
    row("Images", len(records), active, total, reclaimable)
    row("Unpacked layers", storage.layers, "", storage.layer_bytes, 0)
    row("Containers", len(containers), running, storage.snapshot_bytes, 0)
    row("Local Volumes", len(volumes), len(volume_users), volume_bytes, 0)
    row("Unreferenced", "", "", unused, unused)
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


def _du(path: Path) -> int:
    """Bytes in blocks under `path`, each inode once (as du)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total

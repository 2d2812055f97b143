"""`portside image ...`: the image noun, plus helpers the image verbs share.

Other components may add subcommands to this group (`image.add_command`), so
the group lives in its own module; the verbs are imported lazily.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from portside.cli.lazy import LazyGroup

if TYPE_CHECKING:
    from portside.images.copy import Blob
    from portside.images.store import ImageRecord, ImageStore
    from portside.registry.resolver import Resolver

# subcommand -> "module:attribute"
SUBCOMMANDS: dict[str, str] = {
    "inspect": "portside.cli.commands.inspect:image_inspect",
    "ls": "portside.cli.commands.images:images",
    "list": "portside.cli.commands.images:images",
    "rm": "portside.cli.commands.rmi:rmi",
    "pull": "portside.cli.commands.pull:pull",
    "push": "portside.cli.commands.push:push",
    "tag": "portside.cli.commands.tag:tag",
    "prune": "portside.cli.commands.image:image_prune",
    "tags": "portside.cli.commands.search:image_tags",
    "save": "portside.cli.commands.save:save",
    "load": "portside.cli.commands.load:load",
    "import": "portside.cli.commands.import_cmd:import_image",
    "mount": "portside.cli.commands.image_mount:image_mount",
    "unmount": "portside.cli.commands.image_mount:image_unmount",
}


@click.group(cls=LazyGroup, lazy_commands=SUBCOMMANDS)
def image() -> None:
    """Manage images."""


# -- shared helpers ------------------------------------------------------------------------


def open_store(ctx: click.Context | None = None) -> ImageStore:
    """The image store under --root / PORTSIDE_ROOT."""
    from portside.config import paths
    from portside.images.store import ImageStore

    ctx = ctx or click.get_current_context()
    root_ctx = ctx.find_root()
    obj = root_ctx.obj if isinstance(root_ctx.obj, dict) else {}
    p = paths(obj.get("root"), obj.get("runroot"))
    return ImageStore(p.root)


def make_resolver(tls_verify: bool | None, creds: str | None, max_connections: int = 8) -> Resolver:
    from portside.config import parse_creds
    from portside.registry.resolver import Resolver

    return Resolver(
        tls_verify=tls_verify,
        credentials=parse_creds(creds) if creds else None,
        max_connections=max_connections,
    )


def tls_verify_option(f: Any) -> Any:
    return click.option(
        "--tls-verify",
        type=click.BOOL,
        default=None,
        is_flag=False,
        flag_value=True,
        help="Require HTTPS and verify certificates (default: true except for loopback).",
    )(f)


def change_option(f: Any) -> Any:
    """`--change/-c INSTRUCTION`, repeatable, as `commit` and `import` take it (docker's
    flag); the values go to `portside.images.importer.apply_changes`."""
    return click.option(
        "--change",
        "-c",
        "changes",
        multiple=True,
        metavar="INSTRUCTION",
        help="Dockerfile instruction to apply: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, "
        "VOLUME, WORKDIR, STOPSIGNAL.",
    )(f)


def creds_option(f: Any) -> Any:
    return click.option(
        "--creds", default=None, metavar="USER[:PASS]", help="Registry credentials."
    )(f)


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def human_ago(ts: float | None) -> str:
    if ts is None:
        return "N/A"
    delta = max(0.0, time.time() - ts)
    for secs, unit in (
        (86400 * 365, "year"),
        (86400 * 30, "month"),
        (86400 * 7, "week"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if delta >= secs:
            k = int(delta // secs)
            return f"{k} {unit}{'s' if k > 1 else ''} ago"
    return "Less than a minute ago"


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        text = value.replace("Z", "+00:00")
        if "." in text:
            head, _, tail = text.partition(".")
            frac = "".join(c for c in tail if c.isdigit())
            tz = tail[len(frac) :]
            text = f"{head}.{frac[:6]}{tz}"
        return _dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def repo_tag(name: str) -> tuple[str, str]:
    repo, _, tag = name.rpartition(":")
    if "/" in tag:
        return name, "<none>"
    return repo, tag


class PlainProgress:
    """Progress as lines (not a TTY): one when a blob starts and one when it is done."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stderr

    def _w(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def blob_start(self, blob: Blob, kind: str) -> None:
        self._w(f"Copying {kind} {blob.digest}")

    def blob_advance(self, blob: Blob, nbytes: int) -> None:
        pass

    def blob_done(self, blob: Blob, skipped: bool) -> None:
        self._w(f"Copied {blob.digest}" + (" (already present)" if skipped else ""))

    def manifest_written(self, digest: str, media_type: str) -> None:
        self._w(f"Writing manifest {digest}")

    def close(self) -> None:
        pass


class LiveProgress:
    """Per-blob bars (bytes, total, speed) with rich, for a terminal."""

    def __init__(self) -> None:
        import threading

        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._lock = threading.Lock()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._progress.start()
        self._started = time.monotonic()
        self._bytes = 0

    def blob_start(self, blob: Blob, kind: str) -> None:
        with self._lock:
            total = blob.size if blob.size >= 0 else None
            self._tasks[blob.digest] = self._progress.add_task(
                f"{kind} {blob.digest[7:19]}", total=total
            )

    def blob_advance(self, blob: Blob, nbytes: int) -> None:
        with self._lock:
            self._bytes += nbytes
            self._progress.advance(self._tasks[blob.digest], nbytes)

    def blob_done(self, blob: Blob, skipped: bool) -> None:
        with self._lock:
            task = self._tasks[blob.digest]
            if skipped:
                self._progress.update(task, description=f"{blob.digest[7:19]} exists")
            self._progress.update(task, completed=blob.size if blob.size >= 0 else 0)

    def manifest_written(self, digest: str, media_type: str) -> None:
        pass

    def close(self) -> None:
        self._progress.stop()
        took = time.monotonic() - self._started
        sys.stderr.write(f"Copied {human_size(self._bytes)} in {took:.1f}s\n")


def make_progress(quiet: bool) -> PlainProgress | LiveProgress | None:
    if quiet:
        return None
    if sys.stderr.isatty():
        return LiveProgress()
    return PlainProgress()


def docker_inspect(store: ImageStore, rec: ImageRecord) -> dict[str, Any]:
    """The `docker image inspect` shape for one image."""
    content = store.content
    manifest = json.loads(content.read_bytes(rec.manifest_digest))
    try:
        config = json.loads(content.read_bytes(rec.config_digest))
    except Exception:
        config = {}
    history = config.get("history") or []
    return {
        "Id": str(rec.config_digest),
        "Digest": str(rec.manifest_digest),
        "RepoTags": list(rec.names),
        "RepoDigests": list(rec.digests),
        "Parent": "",
        "Comment": next((h.get("comment", "") for h in reversed(history) if h.get("comment")), ""),
        "Created": config.get("created", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config") or {},
        "Architecture": config.get("architecture", rec.architecture or ""),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", rec.os or ""),
        "Size": rec.size,
        "VirtualSize": rec.size,
        "RootFS": {
            "Type": (config.get("rootfs") or {}).get("type", "layers"),
            "Layers": (config.get("rootfs") or {}).get("diff_ids", []),
        },
        "History": history,
        "ManifestType": rec.media_type,
        "Layers": [layer.get("digest") for layer in manifest.get("layers") or []],
        "Labels": (config.get("config") or {}).get("Labels"),
    }


# -- image prune (lives here: it is only a subcommand) --------------------------------------


@click.command("prune")
@click.option("--all", "-a", "all_images", is_flag=True, help="Remove all unused images.")
@click.option("--force", "-f", is_flag=True, help="Do not ask (always true here).")
def image_prune(all_images: bool, force: bool) -> None:
    """Remove dangling images (with -a, every image no container uses)."""
    store = open_store()
    removed = store.prune(all_images=all_images)
    report = store.gc()
    for rec in removed:
        click.echo(rec.id)
    if removed or report.freed:
        click.echo(f"Total reclaimed space: {human_size(report.freed)}", err=True)

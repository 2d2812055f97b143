"""The snapshot-driver protocol, and choosing a driver for a store.

A driver decides how a layer is kept on disk (overlay: only its own changes;
vfs: a full tree) and how a container's root filesystem is made from a stack
of layers. It returns mount specs and leaves the mounting to the caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from portside.errors import ConfigError, StorageError
from portside.storage.mounts import Mount

if TYPE_CHECKING:
    from portside.storage.apply import ApplyOptions, ApplyResult

__all__ = ["DRIVERS", "Driver", "choose_driver", "overlay_supported"]

DRIVERS = ("overlay", "vfs")


class Driver(Protocol):
    name: str

    def create_layer(
        self,
        blob: IO[bytes],
        dest: Path,
        parent: Path | None,
        lowers: list[Path],
        options: ApplyOptions,
    ) -> ApplyResult:
        """Fill the new directory `dest` with the layer (on top of `parent`'s tree
        for drivers that keep full trees; `lowers` are the parent chain's dirs,
        top first)."""
        ...

    def prepare(self, snap: Path, lowers: list[Path], readonly: bool) -> list[Mount]:
        """Make the snapshot dir `snap` over `lowers` (the layer dirs, top first)
        and return the mounts that show it."""
        ...

    def upper(self, snap: Path) -> Path:
        """Where the snapshot's own changes live."""
        ...


def _config_driver() -> str | None:
    path = os.environ.get("PORTSIDE_CONFIG", "/etc/portside/portside.toml")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"{path}: {e}") from e
    import tomllib  # only when there is a file: most calls have none, and it costs ~3 ms

    try:
        doc = tomllib.loads(raw.decode())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from e
    storage = doc.get("storage", {})
    value = storage.get("driver") if isinstance(storage, dict) else None
    return str(value) if value else None


def choose_driver(storage_root: Path, requested: str | None = None) -> str:
    """--storage-driver, then PORTSIDE_STORAGE_DRIVER, then portside.toml
    [storage] driver, then overlay if it works here (probed once), else vfs."""
    name = requested or os.environ.get("PORTSIDE_STORAGE_DRIVER") or _config_driver()
    if name:
        if name not in DRIVERS:
            raise ConfigError(f"unknown storage driver {name!r} (choose from {', '.join(DRIVERS)})")
        return name
    return "overlay" if overlay_supported(storage_root) else "vfs"


def overlay_supported(storage_root: Path) -> bool:
    """Mount a tiny overlay with a whiteout and an opaque dir and check both
    work; the answer is kept in storage_root/probe.json."""
    cache = storage_root / "probe.json"
    with contextlib.suppress(OSError, ValueError):
        return bool(json.loads(cache.read_text())["overlay"])
    ok = _probe(storage_root)
    storage_root.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"overlay": ok}))
    os.replace(tmp, cache)
    return ok


def _probe(storage_root: Path) -> bool:
    if os.geteuid() != 0:
        return False
    from portside.linux import libc
    from portside.storage.rmtree import remove_tree

    storage_root.mkdir(parents=True, exist_ok=True)
    base = storage_root / f"probe-{os.getpid()}"
    try:
        low1, low2, upper, work, merged = (base / n for n in ("l1", "l2", "u", "w", "m"))
        for p in (low1, low2, upper, work, merged):
            p.mkdir(parents=True)
        (low2 / "gone").write_text("x")
        (low2 / "dir").mkdir()
        (low2 / "dir" / "hidden").write_text("x")
        os.mknod(low1 / "gone", stat.S_IFCHR, os.makedev(0, 0))
        (low1 / "dir").mkdir()
        os.setxattr(low1 / "dir", "trusted.overlay.opaque", b"y")
        data = f"lowerdir={low1}:{low2},upperdir={upper},workdir={work}"
        try:
            libc.mount("overlay", str(merged), "overlay", 0, data)
        except OSError:
            return False
        try:
            return not (merged / "gone").exists() and os.listdir(merged / "dir") == []
        finally:
            libc.umount2(str(merged), libc.MNT_DETACH)
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError, StorageError):
            remove_tree(base)

"""vfs: every layer and every container is a full copy of its tree.

Slow and space-hungry, but it needs nothing from the kernel or the file
system beyond plain files, so it works wherever overlayfs does not.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import IO, TYPE_CHECKING

from portside.errors import StorageError
from portside.storage.mounts import Mount

if TYPE_CHECKING:
    from portside.storage.apply import ApplyOptions, ApplyResult

__all__ = ["VfsDriver", "copy_tree"]


def copy_tree(src: Path, dest: Path) -> None:
    """A faithful copy (owners, modes, times, xattrs, hardlinks, devices);
    GNU cp does this well and reflinks where the file system can."""
    proc = subprocess.run(
        ["cp", "-a", "--reflink=auto", "--no-target-directory", str(src), str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StorageError(f"copy {src} to {dest}: {proc.stderr.strip()}")


class VfsDriver:
    name = "vfs"

    def create_layer(
        self,
        blob: IO[bytes],
        dest: Path,
        parent: Path | None,
        lowers: list[Path],
        options: ApplyOptions,
    ) -> ApplyResult:
        if parent is None:
            dest.mkdir(mode=0o755)
        else:
            copy_tree(parent, dest)
        from portside.storage.apply import WhiteoutMode, apply_layer

        options.whiteouts = WhiteoutMode.APPLY
        options.lowers = ()
        return apply_layer(blob, dest, options)

    def prepare(self, snap: Path, lowers: list[Path], readonly: bool) -> list[Mount]:
        snap.mkdir(mode=0o700)
        (snap / "merged").mkdir()
        if readonly and lowers:
            return [Mount("bind", str(lowers[0]), "", ("rbind", "ro"))]
        rootfs = snap / "rootfs"
        if lowers:
            copy_tree(lowers[0], rootfs)
        else:
            rootfs.mkdir(mode=0o755)
        opts = ("rbind", "ro") if readonly else ("rbind", "rw")
        return [Mount("bind", str(rootfs), "", opts)]

    def upper(self, snap: Path) -> Path:
        return snap / "rootfs"

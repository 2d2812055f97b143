"""overlay: one directory per layer, an upper and a work dir per container.

Layers are independent directories (whiteouts kept in overlayfs form), so all
the layers of an image can be unpacked at once. Lower dirs are named in the
mount data by short links (`l/<26 chars>`) so deep images stay within the one
page of mount data the kernel copies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, TYPE_CHECKING

from portside.storage.mounts import Mount

if TYPE_CHECKING:
    from portside.storage.apply import ApplyOptions, ApplyResult

__all__ = ["OverlayDriver"]


class OverlayDriver:
    name = "overlay"

    def create_layer(
        self,
        blob: IO[bytes],
        dest: Path,
        parent: Path | None,
        lowers: list[Path],
        options: ApplyOptions,
    ) -> ApplyResult:
        dest.mkdir(mode=0o755)
        from portside.storage.apply import WhiteoutMode, apply_layer

        options.whiteouts = WhiteoutMode.OVERLAY
        options.lowers = lowers
        return apply_layer(blob, dest, options)

    def prepare(self, snap: Path, lowers: list[Path], readonly: bool) -> list[Mount]:
        snap.mkdir(mode=0o700)
        (snap / "merged").mkdir()
        if readonly:
            if not lowers:
                (snap / "empty").mkdir()
                return [Mount("bind", str(snap / "empty"), "", ("rbind", "ro"))]
            if len(lowers) == 1:
                return [Mount("bind", str(lowers[0]), "", ("rbind", "ro"))]
            return [
                Mount("overlay", "overlay", "", ("ro", "lowerdir=" + ":".join(map(str, lowers))))
            ]
        upper, work = snap / "upper", snap / "work"
        upper.mkdir(mode=0o755)
        work.mkdir(mode=0o700)
        if not lowers:
            (snap / "empty").mkdir()
            lowers = [snap / "empty"]
        return [
            Mount(
                "overlay",
                "overlay",
                "",
                (
                    "lowerdir=" + ":".join(map(str, lowers)),
                    f"upperdir={upper}",
                    f"workdir={work}",
                ),
            )
        ]

    def upper(self, snap: Path) -> Path:
        return snap / "upper"


def short_link_name() -> str:
    """26 characters of [A-Z2-7]: unique enough, short enough."""
    import base64

    return base64.b32encode(os.urandom(16)).decode()[:26]

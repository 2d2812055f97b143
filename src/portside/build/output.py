"""`--output type=...,dest=...`: the built image also written somewhere else, as docker's
and buildah's --output do: an OCI or docker archive (through the same save path as
`portside save`), or the image's files (`local`: a directory, `tar`: a tar of them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from portside.errors import BuildError, InvalidArgument

if TYPE_CHECKING:
    from portside.engine.local import LocalEngine
    from portside.images.store import ImageRecord

ARCHIVES = {
    "oci": "oci-archive",
    "oci-archive": "oci-archive",
    "docker": "docker-archive",
    "docker-archive": "docker-archive",
}


def parse_output(spec: str) -> tuple[str, str]:
    """`type=oci,dest=out.tar` (or a bare path: type=local) -> (type, dest)."""
    if "=" not in spec:
        return "local", spec
    fields = dict(part.partition("=")[::2] for part in spec.split(",") if part)
    kind = fields.pop("type", "local")
    dest = fields.pop("dest", "")
    if kind not in (*ARCHIVES, "local", "tar"):
        raise InvalidArgument(f"--output type={kind}: use oci, docker, local or tar")
    if not dest:
        raise InvalidArgument(f"--output {spec!r}: dest= is required")
    if fields:
        raise InvalidArgument(f"--output: unknown option {next(iter(fields))!r}")
    return kind, dest


def write_output(engine: LocalEngine, image: ImageRecord, spec: str, name: str | None) -> None:
    kind, dest = parse_output(spec)
    if kind != "local" and dest != "-":
        Path(dest).resolve().parent.mkdir(parents=True, exist_ok=True)
    if kind in ARCHIVES:
        from portside.images.saveload import save_images

        save_images(engine.images, [name or image.id], dest, ARCHIVES[kind])
        return
    from portside.engine.commit import mount_image, unmount_image

    if not engine.images.config(image).get("rootfs", {}).get("diff_ids"):
        raise BuildError("--output: the image has no layers (no files to write)")
    root = mount_image(engine, image.id)
    try:
        if kind == "local":
            Path(dest).mkdir(parents=True, exist_ok=True)
            res = subprocess.run(
                ["cp", "-a", "--", f"{root}/.", dest], capture_output=True, text=True
            )
        else:
            tmp = f"{dest}.tmp{os.getpid()}"
            res = subprocess.run(
                ["tar", "-C", str(root), "--numeric-owner", "-cf", tmp, "."],
                capture_output=True,
                text=True,
            )
            if res.returncode == 0:
                shutil.move(tmp, dest)
            elif os.path.exists(tmp):
                os.unlink(tmp)
        if res.returncode != 0:
            raise BuildError(f"--output {spec}: {res.stderr.strip().splitlines()[-1]}")
    finally:
        unmount_image(engine, image.id)

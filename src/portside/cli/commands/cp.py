"""`portside cp`: copy files between a container (its mounted root filesystem) and the host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click

from portside.cli.commands.create import get_engine
from portside.errors import InvalidArgument, NotFound


def _split(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        ref, _, path = arg.partition(":")
        return ref, path
    return None, arg


def _inside(rootfs: Path, path: str) -> Path:
    """PATH in the container, symlinks resolved as the container sees them (never outside)."""
    root = os.path.realpath(rootfs)
    cur = root
    parts = [p for p in path.split("/") if p and p != "."]
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            cur = os.path.dirname(cur) if cur != root else root
            continue
        nxt = os.path.join(cur, part)
        if os.path.islink(nxt) and parts:
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"{path}: too many levels of symbolic links")
            target = os.readlink(nxt)
            parts = [p for p in target.split("/") if p] + parts
            cur = root if target.startswith("/") else cur
            continue
        cur = nxt
    return Path(cur)


@click.command()
@click.option("-a", "--archive", is_flag=True, help="Keep ownership (always on as root).")
@click.argument("src")
@click.argument("dest")
def cp(src: str, dest: str, archive: bool) -> None:
    """Copy files between a container and the host: CONTAINER:SRC DEST or SRC CONTAINER:DEST."""
    engine = get_engine()
    src_ref, src_path = _split(src)
    dst_ref, dst_path = _split(dest)
    if (src_ref is None) == (dst_ref is None):
        raise InvalidArgument("cp: exactly one of SRC and DEST must be CONTAINER:PATH")
    if src_ref is not None:
        _, rootfs = engine.rootfs(src_ref)
        source = _inside(rootfs, src_path)
        target = Path(dst_path)
    else:
        assert dst_ref is not None
        _, rootfs = engine.rootfs(dst_ref)
        source = Path(src_path)
        target = _inside(rootfs, dst_path)
    if not os.path.lexists(source):
        raise NotFound(f"{src}: no such file or directory")
    if target.is_dir() and not str(dest).endswith("/."):
        target = target / source.name
    proc = subprocess.run(
        ["cp", "-a", "--no-dereference", str(source), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InvalidArgument(f"cp: {proc.stderr.strip()}")

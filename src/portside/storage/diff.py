"""A container's changes as a new layer tar, reproducibly.

Two sources: an overlay upper dir (whiteout devices and opaque dirs become
`.wh.` entries) and, for vfs, a comparison of the container's tree with its
parent layer's. Either way the tar is the same for the same changes: entries
sorted, owners numeric with no names, mtimes whole seconds clamped to
SOURCE_DATE_EPOCH when it is set, no atime/ctime, and gzip with a zero mtime.
"""

from __future__ import annotations

import enum
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from portside.errors import InvalidArgument
from portside.storage.apply import OPAQUE, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX

__all__ = [
    "Change",
    "ChangeKind",
    "DiffResult",
    "changes_overlay",
    "changes_trees",
    "write_diff_overlay",
    "write_diff_trees",
]

MEDIA_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


class ChangeKind(enum.Enum):
    ADDED = "A"
    CHANGED = "C"
    DELETED = "D"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    path: str  # absolute, as `docker diff` prints it


@dataclass(frozen=True)
class DiffResult:
    digest: str  # of the compressed blob
    size: int  # compressed bytes
    diff_id: str  # of the uncompressed tar
    media_type: str
    entries: int


# ---------------------------------------------------------------- walking


def _sorted_entries(directory: str) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        return sorted(it, key=lambda e: e.name)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


# An item to write: (kind, rel, absolute source path or None for whiteouts)
_Item = tuple[str, str, str | None]


def _overlay_items(upper: Path) -> Iterator[_Item]:
    def walk(rel: str) -> Iterator[_Item]:
        for e in _sorted_entries(os.path.join(upper, rel) if rel else str(upper)):
            crel = f"{rel}/{e.name}" if rel else e.name
            st = e.stat(follow_symlinks=False)
            if _is_whiteout(st):
                yield ("whiteout", crel, None)
                continue
            yield ("entry", crel, e.path)
            if stat.S_ISDIR(st.st_mode):
                if _is_opaque(e.path):
                    yield ("opaque", crel, None)
                yield from walk(crel)

    yield from walk("")


def _meta(st: os.stat_result, path: str) -> tuple[Any, ...]:
    link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return (
        st.st_mode,
        st.st_uid,
        st.st_gid,
        size,
        st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0,
        st.st_rdev,
        link,
        _xattrs(path),
    )


def _tree_items(lower: Path | None, upper: Path) -> Iterator[_Item]:
    """Compare the container tree with its parent's: added or changed entries
    (with their parent dirs), and whiteouts for what went."""

    def walk(rel: str) -> Iterator[_Item]:
        new_dir = os.path.join(upper, rel) if rel else str(upper)
        old_dir = (os.path.join(lower, rel) if rel else str(lower)) if lower else None
        new = {e.name: e for e in _sorted_entries(new_dir)}
        old: dict[str, os.DirEntry[str]] = {}
        if old_dir is not None and os.path.isdir(old_dir) and not os.path.islink(old_dir):
            old = {e.name: e for e in _sorted_entries(old_dir)}
        for name in sorted(new.keys() | old.keys()):
            crel = f"{rel}/{name}" if rel else name
            if name not in new:
                yield ("whiteout", crel, None)
                continue
            e = new[name]
            st = e.stat(follow_symlinks=False)
            o = old.get(name)
            ost = o.stat(follow_symlinks=False) if o is not None else None
            same_type = ost is not None and stat.S_IFMT(ost.st_mode) == stat.S_IFMT(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                children = list(walk(crel)) if same_type else None
                changed = (
                    not same_type
                    or o is None
                    or _meta(st, e.path) != _meta(cast(os.stat_result, ost), o.path)
                )
                if changed or children:
                    yield ("entry", crel, e.path)
                if children:
                    yield from children
                elif not same_type:
                    yield from _all_under(crel, e.path)
                continue
            if (
                o is None
                or not same_type
                or _meta(st, e.path) != _meta(cast(os.stat_result, ost), o.path)
            ):
                yield ("entry", crel, e.path)

    yield from walk("")


def _all_under(rel: str, path: str) -> Iterator[_Item]:
    for e in _sorted_entries(path):
        crel = f"{rel}/{e.name}"
        yield ("entry", crel, e.path)
        if e.is_dir(follow_symlinks=False):
            yield from _all_under(crel, e.path)


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for n in sorted(names):
        if n.startswith("trusted.overlay."):
            continue
        try:
            out.append((n, os.getxattr(path, n, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(out)


# ---------------------------------------------------------------- writing


class _HashWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        pass


def _compressor(sink: _HashWriter, compression: str) -> IO[bytes]:
    if compression == "gzip":
        from isal import igzip

        return cast(IO[bytes], igzip.IGzipFile(fileobj=sink, mode="wb", compresslevel=2, mtime=0))
    if compression == "zstd":
        import zstandard

        return cast(
            IO[bytes],
            zstandard.ZstdCompressor(level=3).stream_writer(cast(Any, sink), closefd=False),
        )
    if compression == "none":
        return cast(IO[bytes], sink)
    raise InvalidArgument(f"unknown layer compression {compression!r} (gzip, zstd, none)")


def _epoch() -> int | None:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as e:
        raise InvalidArgument(f"SOURCE_DATE_EPOCH={raw!r} is not a whole number") from e


def _write(items: Iterator[_Item], out: IO[bytes], compression: str) -> DiffResult:
    epoch = _epoch()
    blob = _HashWriter(out)
    comp = _compressor(blob, compression)
    tar_sink = _HashWriter(comp)
    links: dict[tuple[int, int], str] = {}
    entries = 0
    with tarfile.open(
        fileobj=cast(Any, tar_sink), mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 16
    ) as tf:
        for kind, rel, path in items:
            entries += 1
            if kind == "whiteout":
                parent, _, name = rel.rpartition("/")
                wrel = f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name
                tf.addfile(_plain(wrel, epoch))
                continue
            if kind == "opaque":
                tf.addfile(_plain(f"{rel}/{OPAQUE}", epoch))
                continue
            assert path is not None
            st = os.lstat(path)
            ti = tarfile.TarInfo(rel + ("/" if stat.S_ISDIR(st.st_mode) else ""))
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.uid, ti.gid = st.st_uid, st.st_gid
            ti.uname = ti.gname = ""
            mtime = int(st.st_mtime)
            ti.mtime = min(mtime, epoch) if epoch is not None else mtime
            xattrs = _xattrs(path)
            if xattrs:
                ti.pax_headers = {
                    f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs
                }
            key = (st.st_dev, st.st_ino)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in links:
                ti.type = tarfile.LNKTYPE
                ti.linkname = links[key]
                tf.addfile(ti)
                continue
            if stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    links[key] = rel
                ti.size = st.st_size
                with open(path, "rb") as fh:
                    tf.addfile(ti, fh)
                continue
            if stat.S_ISDIR(st.st_mode):
                ti.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(st.st_mode):
                ti.type = tarfile.SYMTYPE
                ti.linkname = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            elif stat.S_ISFIFO(st.st_mode):
                ti.type = tarfile.FIFOTYPE
            else:
                continue  # sockets do not go into layers
            tf.addfile(ti)
    if comp is not blob:
        comp.close()
    return DiffResult(
        digest=f"sha256:{blob.hash.hexdigest()}",
        size=blob.size,
        diff_id=f"sha256:{tar_sink.hash.hexdigest()}",
        media_type=MEDIA_TYPES[compression],
        entries=entries,
    )


def _plain(name: str, epoch: int | None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = 0o644
    ti.uname = ti.gname = ""
    ti.mtime = epoch if epoch is not None else 0
    return ti


def write_diff_overlay(upper: Path, out: IO[bytes], compression: str = "gzip") -> DiffResult:
    """An overlay upper dir as a layer blob written to `out`."""
    return _write(_overlay_items(upper), out, compression)


def write_diff_trees(
    lower: Path | None, upper: Path, out: IO[bytes], compression: str = "gzip"
) -> DiffResult:
    """What turns tree `lower` (None: empty) into tree `upper`, as a layer blob."""
    return _write(_tree_items(lower, upper), out, compression)


def _lexists_in(lowers: list[Path], rel: str) -> bool:
    return any(os.path.lexists(os.path.join(lower, rel)) for lower in lowers)


def changes_overlay(upper: Path, lowers: list[Path]) -> list[Change]:
    """`docker diff` of an overlay container: A/C/D per path."""
    out: list[Change] = []
    for kind, rel, _ in _overlay_items(upper):
        if kind == "whiteout":
            out.append(Change(ChangeKind.DELETED, "/" + rel))
        elif kind == "entry":
            k = ChangeKind.CHANGED if _lexists_in(lowers, rel) else ChangeKind.ADDED
            out.append(Change(k, "/" + rel))
    return out


def changes_trees(lower: Path | None, upper: Path) -> list[Change]:
    out: list[Change] = []
    for kind, rel, _ in _tree_items(lower, upper):
        if kind == "whiteout":
            out.append(Change(ChangeKind.DELETED, "/" + rel))
        elif kind == "entry":
            exists = lower is not None and os.path.lexists(os.path.join(lower, rel))
            out.append(Change(ChangeKind.CHANGED if exists else ChangeKind.ADDED, "/" + rel))
    return out

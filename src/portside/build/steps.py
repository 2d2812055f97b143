"""COPY and ADD into a mounted build root: files from the context, another stage's
root, a heredoc, a local tar (ADD unpacks it) or a URL (ADD downloads it).

Every destination path is resolved inside the root (symlinks in the image never
lead out of it). Ownership is 0:0 unless --chown names a user and group (looked
up in the image's /etc/passwd and /etc/group, as docker does); --chmod sets the
mode of what is copied; modification times are kept from the source.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from portside.build.context import BuildContext, CopyItem
from portside.errors import BuildError


@dataclass(frozen=True)
class Ownership:
    """The uid/gid COPY and ADD give what they write."""

    uid: int
    gid: int


def resolve_chown(spec: str | None, rootfs: Path) -> Ownership | None:
    if not spec:
        return None
    from portside.engine.specgen import resolve_user

    user, _, group = spec.partition(":")
    try:
        uid, gid, _, _ = resolve_user(user, rootfs)
        if group:
            _, gid, _, _ = resolve_user(f"{user}:{group}", rootfs)
    except Exception as e:
        raise BuildError(f"--chown={spec}: {e}") from None
    return Ownership(uid, gid)


_SYMBOLIC = re.compile(r"([ugoa]*)([-+=])([rwxXst]*)")


def apply_chmod(spec: str, mode: int, is_dir: bool) -> int:
    """An octal or symbolic (u+x,go-w) --chmod applied to `mode`."""
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    for clause in spec.split(","):
        m = _SYMBOLIC.fullmatch(clause)
        if not m:
            raise BuildError(f"--chmod: invalid mode {spec!r}")
        who, op, perms = m.groups()
        mask = 0
        for w in who or "a":
            mask |= {"u": 0o4700, "g": 0o2070, "o": 0o0007, "a": 0o6777}[w]
        bits = 0
        for p in perms:
            if p == "r":
                bits |= 0o444
            elif p == "w":
                bits |= 0o222
            elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
                bits |= 0o111
            elif p == "s":
                bits |= 0o6000
            elif p == "t":
                bits |= 0o1000
        bits &= mask | (0o1000 if "t" in perms else 0)
        if op == "+":
            mode |= bits
        elif op == "-":
            mode &= ~bits
        else:
            mode = (mode & ~mask) | bits
    return mode & 0o7777


class Copier:
    """Writes CopyItems into `rootfs`."""

    def __init__(
        self, rootfs: Path, owner: Ownership | None, chmod: str | None, *, keep: bool = False
    ) -> None:
        self.rootfs = rootfs
        self.owner = owner or Ownership(0, 0)
        self.chmod = chmod
        # COPY --from keeps the source's owners unless --chown is given (buildah's rule)
        self.keep = keep and owner is None

    def _chown(self, path: str, st: os.stat_result) -> None:
        if self.keep:
            os.lchown(path, st.st_uid, st.st_gid)
        else:
            os.lchown(path, self.owner.uid, self.owner.gid)

    def host(self, dest: str) -> str:
        from portside.runtime.rootfs import secure_join

        return secure_join(str(self.rootfs), dest)

    def ensure_dir(self, dest: str, mode: int = 0o755, *, own: bool = False) -> str:
        """Make `dest` and missing parents (0755, root-owned; `own` applies --chown to the
        ones made, as docker does for the destination directory)."""
        path = self.host(dest)
        if os.path.isdir(path):
            return path
        parent = posixpath.dirname(dest.rstrip("/")) or "/"
        if parent != dest:
            self.ensure_dir(parent)
        with contextlib.suppress(FileNotFoundError):
            if not os.path.isdir(path):
                os.unlink(path)
        # through an image symlink the resolved parents may not exist yet (still in root)
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        os.mkdir(path)
        os.chmod(path, mode)
        if own:
            os.lchown(path, self.owner.uid, self.owner.gid)
        else:
            os.lchown(path, 0, 0)
        return path

    def _mode(self, mode: int, is_dir: bool) -> int:
        return apply_chmod(self.chmod, mode, is_dir) if self.chmod else mode

    def copy_items(self, source_root: Path, items: list[CopyItem], top_dirs: set[str]) -> None:
        for item in items:
            src = source_root / item.src if item.src != "." else source_root
            if item.kind == "dir":
                if item.dest in top_dirs:
                    self.ensure_dir(item.dest, own=True)
                    continue
                path = self.ensure_dir(item.dest)
                st = os.lstat(src)
                os.chmod(path, self._mode(stat.S_IMODE(st.st_mode), True))
                self._chown(path, st)
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
                continue
            self.put(src, item.dest, item.kind)
        # directories' times last: writing into them moved their mtimes
        for item in reversed(items):
            if item.kind == "dir" and item.dest not in top_dirs:
                src = source_root / item.src if item.src != "." else source_root
                st = os.lstat(src)
                with contextlib.suppress(OSError):
                    os.utime(self.host(item.dest), ns=(st.st_atime_ns, st.st_mtime_ns))

    def put(self, src: Path, dest: str, kind: str) -> None:
        """One file or symlink at `dest` (replacing what is there, unless a directory)."""
        self.ensure_dir(posixpath.dirname(dest) or "/")
        path = self.host(dest)
        if os.path.isdir(path) and not os.path.islink(path):
            raise BuildError(f"cannot copy to {dest}: a directory is in the way")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        st = os.lstat(src)
        if kind == "symlink":
            os.symlink(os.readlink(src), path)
            self._chown(path, st)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            return
        if kind != "file":
            return  # sockets, fifos, devices: not copied (docker skips them too)
        with open(src, "rb") as fin:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fout:
                _copy_data(fin, fout, st.st_size)
        self._chown(path, st)
        os.chmod(path, self._mode(stat.S_IMODE(st.st_mode), False))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    def write(self, dest: str, data: bytes, mode: int) -> None:
        self.ensure_dir(posixpath.dirname(dest) or "/")
        path = self.host(dest)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.lchown(path, self.owner.uid, self.owner.gid)
        os.chmod(path, self._mode(mode, False))


def _copy_data(fin: BinaryIO, fout: BinaryIO, size: int) -> None:
    src_fd = fin.fileno()
    dst_fd = fout.fileno()
    left = size
    try:
        while left > 0:
            n = os.copy_file_range(src_fd, dst_fd, min(left, 1 << 30))
            if n == 0:
                break
            left -= n
        if left == 0:
            return
    except OSError:
        pass
    shutil.copyfileobj(fin, fout)


def plan_dest(ctx: BuildContext, sources: list[str], dest: str, workdir: str) -> tuple[str, bool]:
    """The absolute destination and whether it names a directory."""
    dest_is_dir = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
    target = posixpath.normpath(posixpath.join("/", workdir or "/", dest or "."))
    return "/" + target.lstrip("/"), dest_is_dir


def into_existing_dir(copier: Copier, items: list[CopyItem], dest: str) -> list[CopyItem]:
    """A single file copied to a path that is an existing directory in the image lands
    inside it (docker and buildah both do this even without a trailing /)."""
    if len(items) != 1 or items[0].kind == "dir":
        return items
    path = copier.host(items[0].dest)
    if os.path.isdir(path) and not os.path.islink(path):
        it = items[0]
        name = posixpath.basename(it.src)
        return [CopyItem(it.src, posixpath.join(it.dest, name), it.kind, it.mode)]
    return items


def extract_tar(copier: Copier, archive: Path, dest: str) -> None:
    """ADD of a local tar: unpacked into dest (made if missing), entries confined to it."""
    from portside.storage.apply import ApplyOptions, WhiteoutMode, apply_layer

    root = copier.ensure_dir(dest, own=copier.owner != Ownership(0, 0))
    try:
        apply_layer(str(archive), root, ApplyOptions(whiteouts=WhiteoutMode.APPLY))
    except Exception as e:
        raise BuildError(f"ADD {archive.name}: cannot unpack: {e}") from None


def fetch_url(url: str, dest_dir: Path, checksum: str | None) -> Path:
    """ADD of a URL: downloaded (mode 0600 as docker makes it), checksum verified."""
    import hashlib
    import urllib.parse

    import httpx

    name = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
    out = dest_dir / name
    algo, _, want = (checksum or "sha256:").partition(":")
    h = hashlib.new(algo)
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as r:
            if r.status_code != 200:
                raise BuildError(f"ADD {url}: HTTP {r.status_code}")
            with open(out, "wb") as f:
                for chunk in r.iter_bytes():
                    h.update(chunk)
                    f.write(chunk)
    except httpx.HTTPError as e:
        raise BuildError(f"ADD {url}: {e}") from None
    if checksum and h.hexdigest() != want:
        got = f"{algo}:{h.hexdigest()}"
        raise BuildError(f"ADD {url}: checksum mismatch: want {checksum}, got {got}")
    os.chmod(out, 0o600)
    lm = None
    with contextlib.suppress(Exception):
        lm = r.headers.get("last-modified")
    if lm:
        from email.utils import parsedate_to_datetime

        with contextlib.suppress(Exception):
            t = parsedate_to_datetime(lm).timestamp()
            os.utime(out, (t, t))
    return out

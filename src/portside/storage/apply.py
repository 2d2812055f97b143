"""Apply a layer tar stream onto a directory, never reaching outside it.

The tar is read once, as a stream (gzip, zstd or plain, told apart by magic
bytes), and hashed as it passes, so the diffID comes for free and no copy of
the tar lands on disk. Every path is resolved from the root's directory fd
one component at a time with O_NOFOLLOW: a symlink in the middle of a name is
refused, never followed, whatever the tar says. Names are checked, but the
check that matters is the kernel's.

File creation dominates on ext4 (tens to hundreds of microseconds a file), so
regular files are written by a pool of threads (the os calls release the GIL)
while the main thread keeps parsing; directories, links and nodes are made in
order by the main thread, so a worker only ever writes into a directory that
already exists and hardlinks wait for their target.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import errno
import io
import os
import resource
import stat
import tarfile
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from portside.errors import StorageError, UnsafeLayer

__all__ = [
    "ApplyOptions",
    "ApplyResult",
    "Compression",
    "DevicePolicy",
    "MissingLinkTarget",
    "WhiteoutMode",
    "apply_layer",
    "detect_compression",
    "open_decompressed",
    "unpack_layer",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# Files up to this size are read into memory and handed to a worker thread;
# bigger ones are streamed to disk by the main thread.
_SMALL_FILE = 4 << 20
_MAX_IN_FLIGHT = 96 << 20
_MAX_CACHED_DIRS = 4096


class MissingLinkTarget(UnsafeLayer):
    """A hardlink to a file neither in the layer nor in its (unpacked) lowers."""


class Compression(enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


class WhiteoutMode(enum.Enum):
    """OVERLAY keeps whiteouts as overlayfs reads them (0/0 char devices and the
    opaque xattr) in a layer dir of its own; APPLY carries them out (deletes)
    on a tree that already holds the lower layers (the vfs driver)."""

    OVERLAY = "overlay"
    APPLY = "apply"


class DevicePolicy(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"  # e.g. in a user namespace, where mknod cannot work anyway


def _default_threads() -> int:
    return max(4, min(8, 4 * (os.cpu_count() or 1)))


@dataclass
class ApplyOptions:
    whiteouts: WhiteoutMode = WhiteoutMode.OVERLAY
    devices: DevicePolicy = DevicePolicy.ALLOW
    chown: bool = field(default_factory=lambda: os.geteuid() == 0)
    max_size: int = 64 << 30  # apparent bytes unpacked, and bytes of tar read
    max_entries: int = 2_000_000
    threads: int = field(default_factory=_default_threads)
    # Lower layer roots, top first: for an OVERLAY layer, where hardlink targets
    # and implicit parent directories not in this layer are looked up.
    lowers: Sequence[Path] = ()


@dataclass(frozen=True)
class ApplyResult:
    diff_id: str  # sha256:<hex> of the uncompressed tar
    size: int  # bytes of uncompressed tar
    entries: int
    unpacked_size: int  # apparent bytes of regular files
    compression: Compression


# ---------------------------------------------------------------- streams


def detect_compression(head: bytes) -> Compression:
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.NONE


class _Prefixed(io.RawIOBase):
    """A stream with bytes already read put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        n = len(data)
        b[:n] = data
        return n


def open_decompressed(raw: IO[bytes]) -> tuple[IO[bytes], Compression]:
    """Wrap `raw` (a layer blob) in the decompressor its magic bytes ask for."""
    head = b""
    while len(head) < 4:
        chunk = raw.read(4 - len(head))
        if not chunk:
            break
        head += chunk
    kind = detect_compression(head)
    src = io.BufferedReader(_Prefixed(head, raw), 1 << 16)
    if kind is Compression.GZIP:
        from isal import igzip_threaded

        return igzip_threaded.open(src, "rb", threads=1), kind
    if kind is Compression.ZSTD:
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(src, read_size=1 << 20)
        return io.BufferedReader(reader, 1 << 20), kind
    return src, kind


class _HashingReader:
    """Hashes and counts the uncompressed tar as tarfile reads it."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        import hashlib

        self._inner = inner
        self._hash = hashlib.sha256()
        self.size = 0
        self._limit = limit

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self.size += len(data)
        if self.size > self._limit:
            raise UnsafeLayer(f"layer is larger than the ceiling of {self._limit} bytes")
        self._hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


# ---------------------------------------------------------------- names


def clean_name(name: str, what: str = "entry") -> str:
    """The root-relative form of a tar name; refuses names that leave the root."""
    if name.startswith("/"):
        raise UnsafeLayer(f"{what} {name!r}: absolute path")
    parts = [p for p in name.split("/") if p and p != "."]
    if ".." in parts:
        raise UnsafeLayer(f"{what} {name!r}: '..' component")
    if "\x00" in name:
        raise UnsafeLayer(f"{what} {name!r}: NUL in name")
    return "/".join(parts)


def open_beneath(root_fd: int, rel: str, what: str) -> int:
    """Open directory `rel` under root_fd without following any symlink."""
    fd = os.dup(root_fd)
    try:
        for part in rel.split("/") if rel else ():
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeLayer(f"{what}: {rel!r} goes through a non-directory") from e
                raise
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            out.append((key[13:], value.encode("utf-8", "surrogateescape")))
        elif key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key[17:])
            out.append((name, base64.b64decode(value + "=" * (-len(value) % 4))))
    # a layer must not steer overlayfs (redirects, opaque flags) through xattrs
    return [(k, v) for k, v in out if not k.startswith("trusted.overlay.")]


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return round(float(member.mtime) * 1e9)


# ---------------------------------------------------------------- applier


class _Applier:
    def __init__(self, root_fd: int, opts: ApplyOptions) -> None:
        self.root_fd = root_fd
        self.opts = opts
        self.overlay = opts.whiteouts is WhiteoutMode.OVERLAY
        self.dirs: dict[str, int] = {"": root_fd}
        self.seen: dict[str, bool] = {}  # name -> explicit entry (False: implicit parent)
        self.nondirs: set[str] = set()
        self.pending: dict[str, Future[None]] = {}
        self.inflight: deque[tuple[Future[None], int]] = deque()
        self.inflight_bytes = 0
        self.deferred_dirs: list[tuple[str, int, int]] = []  # rel, mode, mtime_ns
        self.pool = ThreadPoolExecutor(max(1, opts.threads), thread_name_prefix="unpack")
        self.entries = 0
        self.unpacked = 0
        self.lower_fds: list[int] = []
        self._lock = threading.Lock()

    # ---- bookkeeping

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for rel, fd in self.dirs.items():
            if rel:
                os.close(fd)
        self.dirs = {"": self.root_fd}
        for fd in self.lower_fds:
            os.close(fd)
        self.lower_fds = []

    def drain(self) -> None:
        """Wait for every queued write (and raise the first failure)."""
        while self.inflight:
            fut, n = self.inflight.popleft()
            self.inflight_bytes -= n
            fut.result()

    def _reset_dir_cache(self) -> None:
        self.drain()
        for rel, fd in list(self.dirs.items()):
            if rel:
                os.close(fd)
        self.dirs = {"": self.root_fd}

    def _forget_dirs_under(self, rel: str) -> None:
        if any(k == rel or k.startswith(rel + "/") for k in self.dirs):
            self.drain()
            for k in [k for k in self.dirs if k == rel or k.startswith(rel + "/")]:
                os.close(self.dirs.pop(k))

    def _dir_fd(self, rel: str, entry: str) -> int:
        fd = self.dirs.get(rel)
        if fd is not None:
            return fd
        if rel in self.nondirs:
            raise UnsafeLayer(f"entry {entry!r}: parent {rel!r} is not a directory")
        if len(self.dirs) > _MAX_CACHED_DIRS:
            self._reset_dir_cache()
        parent, _, name = rel.rpartition("/")
        pfd = self._dir_fd(parent, entry)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        except FileNotFoundError:
            self._mkdir_implicit(pfd, name, rel)
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeLayer(
                    f"entry {entry!r}: parent {rel!r} is a symlink or not a directory"
                ) from e
            raise
        self.dirs[rel] = fd
        return fd

    def _mkdir_implicit(self, pfd: int, name: str, rel: str) -> None:
        """A parent the tar did not list: copy a lower layer's dir if any
        (overlay shows the topmost copy), else 0755 root."""
        self.seen.setdefault(rel, False)
        st = self._lower_stat(rel) if self.overlay else None
        os.mkdir(name, 0o700, dir_fd=pfd)
        if st is None or not stat.S_ISDIR(st.st_mode):
            os.chmod(name, 0o755, dir_fd=pfd)
            return
        if self.opts.chown:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=pfd, follow_symlinks=False)
        self.deferred_dirs.append((rel, stat.S_IMODE(st.st_mode), st.st_mtime_ns))

    def _lower_roots(self) -> list[int]:
        if not self.lower_fds and self.opts.lowers:
            self.lower_fds = [os.open(p, _DIR_FLAGS) for p in self.opts.lowers]
        return self.lower_fds

    def _lower_stat(self, rel: str) -> os.stat_result | None:
        parent, _, name = rel.rpartition("/")
        for lfd in self._lower_roots():
            try:
                pfd = open_beneath(lfd, parent, rel)
            except (OSError, UnsafeLayer):
                continue
            try:
                return os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except OSError:
                continue
            finally:
                os.close(pfd)
        return None

    def _split(self, rel: str, entry: str) -> tuple[int, str]:
        parent, _, name = rel.rpartition("/")
        return self._dir_fd(parent, entry), name

    def _claim(self, rel: str, entry: str, is_dir: bool = False) -> None:
        prev = self.seen.get(rel)
        if prev is not None and not (is_dir and prev is False):
            raise UnsafeLayer(f"entry {entry!r}: duplicate entry in the layer")
        self.seen[rel] = True
        if not is_dir:
            self.nondirs.add(rel)

    # ---- removal (vfs whiteouts, replacements)

    def _remove(self, pfd: int, name: str, rel: str) -> None:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._forget_dirs_under(rel)
            _rmtree_at(pfd, name)
        else:
            os.unlink(name, dir_fd=pfd)

    def _make_room(self, pfd: int, name: str, rel: str, keep_dir: bool = False) -> bool:
        """Clear the way for a new entry; True if a directory was kept."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if keep_dir and stat.S_ISDIR(st.st_mode):
            return True
        self._remove(pfd, name, rel)
        return False

    # ---- metadata

    def _set_xattrs(self, target: int | str, member: tarfile.TarInfo, entry: str) -> None:
        for key, value in _xattrs(member):
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as e:
                if e.errno == errno.EPERM and key.startswith("user."):
                    continue  # user.* is not allowed on links and devices
                raise StorageError(f"entry {entry!r}: setxattr {key}: {e.strerror}") from e

    def _own(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        if self.opts.chown:
            os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)

    # ---- entry kinds

    def apply(self, member: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        entry = member.name
        self.entries += 1
        if self.entries > self.opts.max_entries:
            raise UnsafeLayer(
                f"entry {entry!r}: layer has more than {self.opts.max_entries} entries"
            )
        if member.size and member.isreg():
            self.unpacked += member.size
            if self.unpacked > self.opts.max_size:
                raise UnsafeLayer(
                    f"entry {entry!r}: layer unpacks to more than {self.opts.max_size} bytes"
                )
        rel = clean_name(entry)
        base = rel.rpartition("/")[2]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(rel, entry)
            return
        if not rel:
            self._root(member, entry)
        elif member.isdir():
            self._dir(rel, member, entry)
        elif member.isreg():
            self._file(rel, member, tf, entry)
        elif member.issym():
            self._symlink(rel, member, entry)
        elif member.islnk():
            self._hardlink(rel, member, entry)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._node(rel, member, entry)
        else:
            raise UnsafeLayer(f"entry {entry!r}: unsupported tar entry type {member.type!r}")

    def _root(self, member: tarfile.TarInfo, entry: str) -> None:
        if not member.isdir():
            raise UnsafeLayer(f"entry {entry!r}: the layer root must be a directory")
        if self.opts.chown:
            os.chown(self.root_fd, member.uid, member.gid)
        self._set_xattrs(self.root_fd, member, entry)
        self.deferred_dirs.append(("", member.mode & 0o7777, _mtime_ns(member)))

    def _whiteout(self, rel: str, entry: str) -> None:
        self._claim(rel, entry)
        parent, _, base = rel.rpartition("/")
        pfd = self._dir_fd(parent, entry)
        if base == OPAQUE:
            if self.overlay:
                os.setxattr(pfd, OVERLAY_OPAQUE_XATTR, b"y")
            else:
                self.drain()
                for child in os.listdir(pfd):
                    crel = f"{parent}/{child}" if parent else child
                    if crel not in self.seen:
                        self._remove(pfd, child, crel)
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise UnsafeLayer(f"entry {entry!r}: invalid whiteout")
        trel = f"{parent}/{name}" if parent else name
        if trel in self.seen:
            raise UnsafeLayer(f"entry {entry!r}: whiteout of an entry of the same layer")
        self.seen[trel] = True
        if self.overlay:
            os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
        else:
            self._remove(pfd, name, trel)

    def _dir(self, rel: str, member: tarfile.TarInfo, entry: str) -> None:
        self._claim(rel, entry, is_dir=True)
        pfd, name = self._split(rel, entry)
        if not self._make_room(pfd, name, rel, keep_dir=True):
            os.mkdir(name, 0o700, dir_fd=pfd)
        fd = self._dir_fd(rel, entry)
        if self.opts.chown:
            os.chown(fd, member.uid, member.gid)
        self._set_xattrs(fd, member, entry)
        self.deferred_dirs.append((rel, member.mode & 0o7777, _mtime_ns(member)))

    def _file(self, rel: str, member: tarfile.TarInfo, tf: tarfile.TarFile, entry: str) -> None:
        self._claim(rel, entry)
        pfd, name = self._split(rel, entry)
        if not self.overlay:
            self._make_room(pfd, name, rel)
        if member.sparse is None and member.size <= _SMALL_FILE:
            data = tf.fileobj.read(member.size) if member.size else b""
            if len(data) != member.size:
                raise StorageError(f"entry {entry!r}: layer tar is truncated")
            fut = self.pool.submit(self._write_small, pfd, name, member, data, entry)
            self.pending[rel] = fut
            self.inflight.append((fut, len(data) + 4096))
            self.inflight_bytes += len(data) + 4096
            while self.inflight_bytes > _MAX_IN_FLIGHT or len(self.inflight) > 4096:
                done, n = self.inflight.popleft()
                self.inflight_bytes -= n
                done.result()
            if self.inflight and self.inflight[0][0].done():
                self._reap()
            return
        self._write_big(pfd, name, member, tf, entry)

    def _reap(self) -> None:
        while self.inflight and self.inflight[0][0].done():
            fut, n = self.inflight.popleft()
            self.inflight_bytes -= n
            fut.result()

    def _finish_file(self, fd: int, member: tarfile.TarInfo, entry: str) -> None:
        if self.opts.chown:
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)  # after chown, which clears setuid
        self._set_xattrs(fd, member, entry)
        ns = _mtime_ns(member)
        os.utime(fd, ns=(ns, ns))

    def _write_small(
        self, pfd: int, name: str, member: tarfile.TarInfo, data: bytes, entry: str
    ) -> None:
        fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=pfd)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            self._finish_file(fd, member, entry)
        finally:
            os.close(fd)

    def _write_big(
        self, pfd: int, name: str, member: tarfile.TarInfo, tf: tarfile.TarFile, entry: str
    ) -> None:
        fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=pfd)
        try:
            src = tf.extractfile(member)
            assert src is not None
            if member.sparse is not None:
                sparse: list[tuple[int, int]] = list(cast(Any, member.sparse))
                for offset, length in sparse:
                    src.seek(offset)
                    _copy_at(src, fd, offset, length, entry)
            else:
                _copy_at(src, fd, 0, member.size, entry)
            os.ftruncate(fd, member.size)
            self._finish_file(fd, member, entry)
        finally:
            os.close(fd)

    def _symlink(self, rel: str, member: tarfile.TarInfo, entry: str) -> None:
        self._claim(rel, entry)
        pfd, name = self._split(rel, entry)
        if not self.overlay:
            self._make_room(pfd, name, rel)
        # The target is only text: a symlink may point anywhere, we never follow it.
        os.symlink(member.linkname, name, dir_fd=pfd)
        self._own(pfd, name, member)
        if member.pax_headers:
            self._set_xattrs(f"/proc/self/fd/{pfd}/{name}", member, entry)
        ns = _mtime_ns(member)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, rel: str, member: tarfile.TarInfo, entry: str) -> None:
        self._claim(rel, entry)
        target = clean_name(member.linkname, f"hardlink {entry!r} ->")
        if not target:
            raise UnsafeLayer(f"entry {entry!r}: hardlink to the layer root")
        fut = self.pending.get(target)
        if fut is not None:
            fut.result()
        tparent, _, tname = target.rpartition("/")
        tpfd = self.dirs.get(tparent)
        own_fd = None
        if tpfd is None:
            try:
                tpfd = own_fd = open_beneath(self.root_fd, tparent, f"entry {entry!r}")
            except FileNotFoundError:
                tpfd = None
        try:
            pfd, name = self._split(rel, entry)
            if not self.overlay:
                self._make_room(pfd, name, rel)
            st = None
            if tpfd is not None:
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(tname, dir_fd=tpfd, follow_symlinks=False)
            if st is None or tpfd is None:
                if self.overlay and self._copy_from_lower(target, pfd, name, entry):
                    return
                raise MissingLinkTarget(
                    f"entry {entry!r}: hardlink target {member.linkname!r} not found"
                )
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeLayer(f"entry {entry!r}: hardlink to a directory")
            os.link(tname, name, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            if own_fd is not None:
                os.close(own_fd)

    def _copy_from_lower(self, target: str, pfd: int, name: str, entry: str) -> bool:
        """A hardlink to a file of a lower layer: overlay layers are separate
        directories, so the file is copied (as overlayfs copy-up would)."""
        tparent, _, tname = target.rpartition("/")
        for lfd in self._lower_roots():
            try:
                dfd = open_beneath(lfd, tparent, entry)
            except (OSError, UnsafeLayer):
                continue
            try:
                try:
                    sfd = os.open(tname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                except OSError:
                    continue
                try:
                    st = os.fstat(sfd)
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=pfd)
                    try:
                        while os.copy_file_range(sfd, fd, 1 << 30):
                            pass
                        if self.opts.chown:
                            os.fchown(fd, st.st_uid, st.st_gid)
                        os.fchmod(fd, stat.S_IMODE(st.st_mode))
                        for key in os.listxattr(sfd):
                            os.setxattr(fd, key, os.getxattr(sfd, key))
                        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
                    finally:
                        os.close(fd)
                    return True
                finally:
                    os.close(sfd)
            finally:
                os.close(dfd)
        return False

    def _node(self, rel: str, member: tarfile.TarInfo, entry: str) -> None:
        self._claim(rel, entry)
        if not member.isfifo() and self.opts.devices is DevicePolicy.DENY:
            raise UnsafeLayer(f"entry {entry!r}: device nodes are not allowed here")
        pfd, name = self._split(rel, entry)
        if not self.overlay:
            self._make_room(pfd, name, rel)
        if member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=pfd)
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=pfd)
        self._own(pfd, name, member)
        # we just made this node in a directory we hold, so following is safe
        os.chmod(name, member.mode & 0o7777, dir_fd=pfd)
        self._set_xattrs(f"/proc/self/fd/{pfd}/{name}", member, entry)
        ns = _mtime_ns(member)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        self.drain()
        # directories last: their children's creation moved their mtimes
        for rel, mode, ns in sorted(self.deferred_dirs, key=lambda d: -d[0].count("/")):
            fd = open_beneath(self.root_fd, rel, rel) if rel else os.dup(self.root_fd)
            try:
                os.chmod(fd, mode)
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)


def _copy_at(src: IO[bytes], fd: int, offset: int, length: int, entry: str) -> None:
    left = length
    while left:
        chunk = src.read(min(left, 1 << 20))
        if not chunk:
            raise StorageError(f"entry {entry!r}: layer tar is truncated")
        view = memoryview(chunk)
        while view:
            n = os.pwrite(fd, view, offset)
            offset += n
            view = view[n:]
        left -= len(chunk)


def _rmtree_at(pfd: int, name: str) -> None:
    """Remove a tree under a directory fd, never following a symlink."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
    try:
        if os.geteuid() != 0:
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o700)  # a read-only dir of the layer
        for child in os.listdir(fd):
            try:
                os.unlink(child, dir_fd=fd)
            except IsADirectoryError:
                _rmtree_at(fd, child)
            except PermissionError:
                st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise
                _rmtree_at(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=pfd)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def _opened(layer: IO[bytes] | str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    if isinstance(layer, str | os.PathLike):
        with open(layer, "rb", buffering=0) as f:
            yield f
    else:
        yield layer


def apply_layer(
    layer: IO[bytes] | str | os.PathLike[str],
    root: str | os.PathLike[str],
    options: ApplyOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> ApplyResult:
    """Apply `layer` (a blob stream or path) onto the existing directory `root`.

    On failure the directory is left half-applied: callers apply into a
    scratch copy and rename it into place (see `unpack_layer`).
    """
    opts = options or ApplyOptions()
    _raise_nofile()
    root_fd = os.open(root, _DIR_FLAGS)
    applier = _Applier(root_fd, opts)
    try:
        with _opened(layer) as raw:
            stream, kind = open_decompressed(raw)
            try:
                hashing = _HashingReader(stream, opts.max_size)
                try:
                    tf = tarfile.open(fileobj=cast(Any, hashing), mode="r|", bufsize=1 << 16)  # noqa: SIM115
                except tarfile.ReadError as e:
                    raise StorageError(f"layer is not a tar archive: {e}") from e
                try:
                    for member in tf:
                        applier.apply(member, tf)
                        if progress is not None and applier.entries % 256 == 0:
                            progress(hashing.size)
                except tarfile.TarError as e:
                    raise StorageError(f"layer tar is corrupt: {e}") from e
                applier.finish()
                hashing.drain()
            finally:
                stream.close()
        return ApplyResult(
            diff_id=f"sha256:{hashing.hexdigest()}",
            size=hashing.size,
            entries=applier.entries,
            unpacked_size=applier.unpacked,
            compression=kind,
        )
    except EOFError as e:
        raise StorageError(f"layer stream is truncated: {e}") from e
    finally:
        applier.close()
        os.close(root_fd)


def unpack_layer(
    layer: IO[bytes] | str | os.PathLike[str],
    dest: str | os.PathLike[str],
    options: ApplyOptions | None = None,
) -> ApplyResult:
    """Unpack a layer into the new directory `dest`, all or nothing: the work
    happens in a sibling temp dir that is renamed into place on success."""
    dest_p = Path(dest)
    if dest_p.exists():
        raise StorageError(f"unpack: {dest_p} already exists")
    tmp = dest_p.parent / f".tmp-unpack-{dest_p.name}-{os.getpid()}-{threading.get_ident()}"
    tmp.mkdir(mode=0o700)
    try:
        result = apply_layer(layer, tmp, options)
        os.rename(tmp, dest_p)
        return result
    except BaseException:
        remove_tree(tmp)
        raise


def remove_tree(path: str | os.PathLike[str]) -> None:
    """rm -rf that never follows symlinks and copes with read-only dirs."""
    p = os.fspath(path)
    parent, name = os.path.split(p.rstrip("/"))
    try:
        pfd = os.open(parent or ".", _DIR_FLAGS)
    except FileNotFoundError:
        return
    try:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            _rmtree_at(pfd, name)
        else:
            os.unlink(name, dir_fd=pfd)
    finally:
        os.close(pfd)

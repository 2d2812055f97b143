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
import struct
import tarfile
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self, cast

from portside.errors import PortsideError, StorageError, UnsafeLayer
from portside.storage.rmtree import DIR_FLAGS as _DIR_FLAGS
from portside.storage.rmtree import remove_at, remove_tree

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

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# Files up to this size are read into memory and handed to a worker thread;
# bigger ones are streamed to disk by the main thread.
_SMALL_FILE = 4 << 20
_MAX_IN_FLIGHT = 96 << 20
_MAX_CACHED_DIRS = 4096
_MAX_METADATA = 64 << 20
_BATCH_FILES = 32
_BATCH_BYTES = 4 << 20


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
    """File creation waits on the file system far more than on the CPU, so
    more threads than cores pay off (PORTSIDE_UNPACK_THREADS overrides)."""
    raw = os.environ.get("PORTSIDE_UNPACK_THREADS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
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


def open_decompressed(raw: IO[bytes], threaded: bool = True) -> tuple[IO[bytes], Compression]:
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
        from isal import igzip, igzip_threaded

        if not threaded:
            return cast(IO[bytes], igzip.IGzipFile(fileobj=src, mode="rb")), kind
        return igzip_threaded.open(src, "rb", threads=1), kind
    if kind is Compression.ZSTD:
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(
            src, read_size=1 << 20, read_across_frames=True
        )
        return io.BufferedReader(reader, 1 << 20), kind
    return src, kind


class _Pipeline:
    """Decompresses and hashes the layer in a thread of its own (both release
    the GIL), handing the tar to the parser in chunks; the parser's thread is
    left for parsing."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        import hashlib
        import queue

        self._raw = raw
        self._limit = limit
        self._hash = hashlib.sha256()
        self.size = 0
        self.kind = Compression.NONE
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=32)
        self._error: BaseException | None = None
        self._stop = False
        self._buf = b""
        self._pos = 0
        self._offset = 0
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="layer-inflate", daemon=True)
        self._thread.start()

    def _put(self, chunk: bytes) -> bool:
        import queue

        while not self._stop:
            try:
                self._queue.put(chunk, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            stream, self.kind = open_decompressed(self._raw, threaded=False)
            try:
                while True:
                    chunk = stream.read(1 << 20)
                    if not chunk:
                        break
                    self.size += len(chunk)
                    if self.size > self._limit:
                        raise UnsafeLayer(
                            f"layer is larger than the ceiling of {self._limit} bytes"
                        )
                    self._hash.update(chunk)
                    if not self._put(chunk):
                        return
            finally:
                stream.close()
        except (PortsideError, MemoryError) as e:
            self._error = e
        except Exception as e:  # a corrupt gzip/zstd stream, a failing source
            self._error = StorageError(f"layer stream cannot be read: {e}")
        finally:
            self._put(b"")

    def _next_chunk(self) -> bool:
        if self._eof:
            return False
        self._buf = self._queue.get()
        self._pos = 0
        if not self._buf:
            self._eof = True
            if self._error is not None:
                raise self._error
            return False
        return True

    def read(self, n: int = -1) -> bytes:
        """Exactly n bytes unless the stream ends (tarfile counts on it)."""
        if n < 0 or n > _MAX_METADATA:
            # file data is read in small pieces; only tarfile itself asks for
            # more, to load a pax or long-name header whole into memory
            raise UnsafeLayer(
                f"entry metadata block (pax or long-name header) of {n} bytes "
                f"is larger than {_MAX_METADATA} bytes"
            )
        avail = len(self._buf) - self._pos
        if avail >= n:
            out = self._buf[self._pos : self._pos + n]
            self._pos += n
            self._offset += n
            return out
        parts = [self._buf[self._pos :]] if avail else []
        got = avail
        self._pos = len(self._buf)
        while got < n and self._next_chunk():
            take = min(n - got, len(self._buf))
            parts.append(self._buf[:take] if take < len(self._buf) else self._buf)
            self._pos = take
            got += take
        self._offset += got
        return b"".join(parts)

    # A forward-only file: enough for tarfile's random-access mode, which
    # parses faster than its stream mode (no re-buffering of every read).
    def tell(self) -> int:
        return self._offset

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._offset:
            raise StorageError("layer stream cannot seek backwards")
        while self._offset < pos:
            if not self.read(min(pos - self._offset, 1 << 20)):
                break
        return self._offset

    def seekable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass
        self._thread.join()

    def close(self) -> None:
        self._stop = True
        self._thread.join()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


# ---------------------------------------------------------------- headers

_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_USTAR_MAGIC = (b"ustar\x00", b"ustar ")


def _octal(field: bytes) -> int:
    if field[0] & 0x80:
        raise ValueError("base-256 number")
    end = field.find(b"\0")
    text = (field if end < 0 else field[:end]).strip()
    return int(text, 8) if text else 0


def _text(field: bytes, encoding: str, errors: str) -> str:
    end = field.find(b"\0")
    return (field if end < 0 else field[:end]).decode(encoding, errors)


class _FastTarInfo(tarfile.TarInfo):
    """tarfile's header parser, faster for the plain ustar/GNU headers that
    make up nearly every layer; anything unusual goes to tarfile's own."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        if len(buf) != tarfile.BLOCKSIZE or buf[257:263] not in _USTAR_MAGIC:
            return super().frombuf(buf, encoding, errors)
        f = _HEADER.unpack(buf)
        kind = f[7]
        if kind == tarfile.GNUTYPE_SPARSE:
            return super().frombuf(buf, encoding, errors)
        try:
            mode, uid, gid, size, mtime, chksum = (_octal(x) for x in f[1:7])
            devmajor, devminor = _octal(f[13]), _octal(f[14])
        except ValueError:
            return super().frombuf(buf, encoding, errors)
        if chksum != 256 + sum(buf[:148]) + sum(buf[156:]):
            return super().frombuf(buf, encoding, errors)  # signed sums, or bad
        obj = cls()
        obj.name = _text(f[0], encoding, errors)
        obj.mode, obj.uid, obj.gid, obj.size, obj.mtime = mode, uid, gid, size, mtime
        obj.chksum = chksum
        obj.type = kind
        obj.linkname = _text(f[8], encoding, errors)
        obj.uname = _text(f[11], encoding, errors)
        obj.gname = _text(f[12], encoding, errors)
        obj.devmajor, obj.devminor = devmajor, devminor
        prefix = _text(f[15], encoding, errors)
        if kind == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if prefix and kind not in tarfile.GNU_TYPES:
            obj.name = prefix + "/" + obj.name
        return obj


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
    """Parses in the calling thread; every file-system change is a task on a
    thread pool. Directory fds are futures: a task first waits for its parent
    directory's task, which was queued earlier (the pool runs tasks in FIFO
    order, so what a task waits on has always started)."""

    def __init__(self, root_fd: int, opts: ApplyOptions) -> None:
        self.root_fd = root_fd
        self.opts = opts
        self.overlay = opts.whiteouts is WhiteoutMode.OVERLAY
        self.dirs: dict[str, Future[int]] = {"": _done(root_fd)}
        self.seen: dict[str, bool] = {}  # name -> explicit entry (False: implicit parent)
        self.nondirs: set[str] = set()
        self.pending: dict[str, Future[Any]] = {}  # regular files being written
        self.batch: list[tuple[str, str, tarfile.TarInfo, bytes, str]] = []
        self.batch_parent: str | None = None
        self.batch_pfut: Future[int] | None = None
        self.batch_bytes = 0
        self.inflight: deque[tuple[Future[Any], int]] = deque()
        self.inflight_bytes = 0
        self.deferred_dirs: list[tuple[str, int, int]] = []  # rel, mode, mtime_ns
        self.implicit_dirs: list[tuple[str, int, int]] = []  # filled by tasks
        self.pool = ThreadPoolExecutor(max(1, opts.threads), thread_name_prefix="unpack")
        self.entries = 0
        self.unpacked = 0
        self.lower_fds: list[int] = []
        self._lower_lock = threading.Lock()
        self._euid, self._egid = os.geteuid(), os.getegid()
        self._umask = _current_umask()
        # fresh layer dir, no setgid dirs until finish(): creation sets owner and mode
        self._fast_meta = self.overlay and not os.fstat(root_fd).st_mode & stat.S_ISGID

    # ---- bookkeeping

    def _submit(self, fn: Callable[..., Any], *args: Any, weight: int = 0) -> Future[Any]:
        fut = self.pool.submit(fn, *args)
        self.inflight.append((fut, weight))
        self.inflight_bytes += weight
        while self.inflight_bytes > _MAX_IN_FLIGHT or len(self.inflight) > 8192:
            done, n = self.inflight.popleft()
            self.inflight_bytes -= n
            done.result()
        while self.inflight and self.inflight[0][0].done():
            done, n = self.inflight.popleft()
            self.inflight_bytes -= n
            done.result()
        return fut

    def _flush(self) -> None:
        """Queue the files gathered for one directory as one task: fewer tasks,
        and no two threads fighting over one directory's lock."""
        if not self.batch:
            return
        batch, pfut, weight = self.batch, self.batch_pfut, self.batch_bytes
        self.batch, self.batch_bytes = [], 0
        assert pfut is not None
        fut = self._submit(self._t_write_batch, pfut, batch, weight=weight)
        for rel, *_ in batch:
            self.pending[rel] = fut

    def drain(self) -> None:
        """Wait for every queued task (and raise the first failure)."""
        self._flush()
        while self.inflight:
            fut, n = self.inflight.popleft()
            self.inflight_bytes -= n
            fut.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._close_dirs(lambda rel: bool(rel))
        for fd in self.lower_fds:
            os.close(fd)
        self.lower_fds = []

    def _close_dirs(self, which: Callable[[str], bool]) -> None:
        for rel in [r for r in self.dirs if which(r)]:
            fut = self.dirs.pop(rel)
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                os.close(fut.result())

    def _forget_dirs_under(self, rel: str) -> None:
        def under(k: str) -> bool:
            return k == rel or k.startswith(rel + "/")

        # a cached dir's parents are all cached, so if rel is not, nothing under it is
        if rel in self.dirs:
            self.drain()
            self._close_dirs(under)

    def _dir(self, rel: str, entry: str) -> Future[int]:
        """The fd of directory `rel`, opened (or made, if the tar never listed
        it) without following symlinks."""
        fut = self.dirs.get(rel)
        if fut is not None:
            return fut
        if rel in self.nondirs:
            raise UnsafeLayer(f"entry {entry!r}: parent {rel!r} is not a directory")
        if len(self.dirs) > _MAX_CACHED_DIRS:
            self.drain()
            self._close_dirs(lambda r: bool(r))
        parent, _, name = rel.rpartition("/")
        pfut = self._dir(parent, entry)
        self.seen.setdefault(rel, False)
        lower = self.overlay and bool(self.opts.lowers)
        fut = self._submit(self._t_open_dir, pfut, name, rel, entry, lower)
        self.dirs[rel] = fut
        return fut

    def _t_open_dir(self, pfut: Future[int], name: str, rel: str, entry: str, lower: bool) -> int:
        pfd = pfut.result()
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=pfd)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeLayer(
                    f"entry {entry!r}: parent {rel!r} is a symlink or not a directory"
                ) from e
            raise
        # A parent the tar did not list: copy a lower layer's dir if there is
        # one (overlay shows the topmost copy), else 0755 root.
        st = self._lower_stat(rel) if lower else None
        os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        if st is None or not stat.S_ISDIR(st.st_mode):
            os.fchmod(fd, 0o755)
        else:
            if self.opts.chown:
                os.fchown(fd, st.st_uid, st.st_gid)
            # its mode (maybe setgid) and mtime once its children are in
            # (list.append is atomic)
            self.implicit_dirs.append((rel, stat.S_IMODE(st.st_mode), st.st_mtime_ns))
        return fd

    def _lower_roots(self) -> list[int]:
        with self._lower_lock:
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

    def _claim(self, rel: str, entry: str, is_dir: bool = False) -> None:
        prev = self.seen.get(rel)
        if prev is not None and not (is_dir and prev is False):
            raise UnsafeLayer(f"entry {entry!r}: duplicate entry in the layer")
        self.seen[rel] = True
        if not is_dir:
            self.nondirs.add(rel)
            if not self.overlay:
                # a lower directory this layer replaces: nobody may still be
                # working inside it when a task removes it
                self._forget_dirs_under(rel)

    # ---- removal (vfs whiteouts, replacements)

    def _remove(self, pfd: int, name: str) -> None:
        remove_at(pfd, name)

    def _make_room(self, pfd: int, name: str, keep_dir: bool = False) -> bool:
        """Clear the way for a new entry in a tree that has lower layers in it
        (vfs); True if a directory was there and kept."""
        if self.overlay:
            return False
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if keep_dir and stat.S_ISDIR(st.st_mode):
            return True
        self._remove(pfd, name)
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

    # ---- entry kinds (parsing thread)

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
        parent, _, base = rel.rpartition("/")
        if not member.isreg():
            self._flush()  # tasks run in tar order: what follows may need those files
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(rel, parent, base, entry)
        elif not rel:
            self._root(member, entry)
        elif member.isdir():
            self._dir_entry(rel, parent, base, member, entry)
        elif member.isreg():
            self._file(rel, parent, base, member, tf, entry)
        elif member.issym():
            self._claim(rel, entry)
            self._submit(self._t_symlink, self._dir(parent, entry), base, member, entry)
        elif member.islnk():
            self._hardlink(rel, parent, base, member, entry)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._claim(rel, entry)
            if not member.isfifo() and self.opts.devices is DevicePolicy.DENY:
                raise UnsafeLayer(f"entry {entry!r}: device nodes are not allowed here")
            self._submit(self._t_node, self._dir(parent, entry), base, member, entry)
        else:
            raise UnsafeLayer(f"entry {entry!r}: unsupported tar entry type {member.type!r}")

    def _root(self, member: tarfile.TarInfo, entry: str) -> None:
        if not member.isdir():
            raise UnsafeLayer(f"entry {entry!r}: the layer root must be a directory")
        self._submit(self._t_dir_meta, self.dirs[""], member, entry)
        self.deferred_dirs.append(("", member.mode & 0o7777, _mtime_ns(member)))

    def _whiteout(self, rel: str, parent: str, base: str, entry: str) -> None:
        self._claim(rel, entry)
        pfut = self._dir(parent, entry)
        if base == OPAQUE:
            if self.overlay:
                self._submit(self._t_opaque, pfut)
                return
            self.drain()
            pfd = pfut.result()
            for child in os.listdir(pfd):
                crel = f"{parent}/{child}" if parent else child
                if crel not in self.seen:
                    self._forget_dirs_under(crel)
                    self._remove(pfd, child)
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise UnsafeLayer(f"entry {entry!r}: invalid whiteout")
        trel = f"{parent}/{name}" if parent else name
        if trel in self.seen:
            raise UnsafeLayer(f"entry {entry!r}: whiteout of an entry of the same layer")
        self.seen[trel] = True
        self.nondirs.add(trel)
        if self.overlay:
            self._submit(self._t_whiteout, pfut, name)
        else:
            self._forget_dirs_under(trel)
            self.drain()
            self._remove(pfut.result(), name)

    def _dir_entry(
        self, rel: str, parent: str, base: str, member: tarfile.TarInfo, entry: str
    ) -> None:
        self._claim(rel, entry, is_dir=True)
        self.deferred_dirs.append((rel, member.mode & 0o7777, _mtime_ns(member)))
        fut = self.dirs.get(rel)
        if fut is None:
            fut = self._submit(self._t_mkdir, self._dir(parent, entry), base, member, entry)
            self.dirs[rel] = fut
        else:  # made implicitly for an earlier entry: now it gets its metadata
            self._submit(self._t_dir_meta, fut, member, entry)

    def _file(
        self,
        rel: str,
        parent: str,
        base: str,
        member: tarfile.TarInfo,
        tf: tarfile.TarFile,
        entry: str,
    ) -> None:
        self._claim(rel, entry)
        pfut = self._dir(parent, entry)
        if member.sparse is None and member.size <= _SMALL_FILE:
            data = tf.fileobj.read(member.size) if member.size else b""
            if len(data) != member.size:
                raise StorageError(f"entry {entry!r}: layer tar is truncated")
            if self.batch and (
                parent != self.batch_parent
                or len(self.batch) >= _BATCH_FILES
                or self.batch_bytes >= _BATCH_BYTES
            ):
                self._flush()
            self.batch.append((rel, base, member, data, entry))
            self.batch_parent, self.batch_pfut = parent, pfut
            self.batch_bytes += len(data) + 1024
            return
        self._flush()
        pfd = pfut.result()
        self._make_room(pfd, base)
        self._write_big(pfd, base, member, tf, entry)

    def _hardlink(
        self, rel: str, parent: str, base: str, member: tarfile.TarInfo, entry: str
    ) -> None:
        self._claim(rel, entry)
        target = clean_name(member.linkname, f"hardlink {entry!r} ->")
        if not target:
            raise UnsafeLayer(f"entry {entry!r}: hardlink to the layer root")
        tparent, _, tname = target.rpartition("/")
        self._submit(
            self._t_hardlink,
            self._dir(parent, entry),
            base,
            self.dirs.get(tparent),
            tparent,
            tname,
            target,
            self.pending.get(target),
            member,
            entry,
        )

    # ---- tasks (pool threads)

    def _t_dir_meta(self, fut: Future[int], member: tarfile.TarInfo, entry: str) -> None:
        fd = fut.result()
        if self.opts.chown:
            os.fchown(fd, member.uid, member.gid)
        self._set_xattrs(fd, member, entry)

    def _t_mkdir(self, pfut: Future[int], name: str, member: tarfile.TarInfo, entry: str) -> int:
        pfd = pfut.result()
        if not self._make_room(pfd, name, keep_dir=True):
            os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            if self.opts.chown:
                os.fchown(fd, member.uid, member.gid)
            self._set_xattrs(fd, member, entry)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _t_opaque(self, pfut: Future[int]) -> None:
        os.setxattr(pfut.result(), OVERLAY_OPAQUE_XATTR, b"y")

    def _t_whiteout(self, pfut: Future[int], name: str) -> None:
        os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfut.result())

    def _create_mode(self, member: tarfile.TarInfo) -> int:
        return member.mode & 0o777 if self._fast_meta else 0o600

    def _finish_file(self, fd: int, member: tarfile.TarInfo, entry: str) -> None:
        # Every metadata call dirties the inode in the journal again, so the
        # common case (root-owned, plain mode, fresh overlay layer) skips what
        # creation already got right: the owner is ours (no setgid dirs exist
        # until finish()) and the mode went through an umask that keeps it.
        mode = member.mode & 0o7777
        if self.opts.chown and not (
            self._fast_meta and member.uid == self._euid and member.gid == self._egid
        ):
            os.fchown(fd, member.uid, member.gid)
        if not self._fast_meta or mode & 0o7000 or mode & self._umask:
            os.fchmod(fd, mode)  # after chown, which clears setuid
        if member.pax_headers:
            self._set_xattrs(fd, member, entry)
        ns = _mtime_ns(member)
        os.utime(fd, ns=(ns, ns))

    def _t_write_batch(
        self, pfut: Future[int], batch: list[tuple[str, str, tarfile.TarInfo, bytes, str]]
    ) -> None:
        pfd = pfut.result()
        for _, name, member, data, entry in batch:
            self._write_small(pfd, name, member, data, entry)

    def _write_small(
        self, pfd: int, name: str, member: tarfile.TarInfo, data: bytes, entry: str
    ) -> None:
        self._make_room(pfd, name)
        fd = os.open(name, _FILE_FLAGS, self._create_mode(member), dir_fd=pfd)
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
        """Big or sparse files, streamed by the parsing thread (tarfile's own
        reader cannot seek in a stream, so the sparse map is followed here:
        the archive holds the data blocks one after the other)."""
        src = cast(IO[bytes], tf.fileobj)
        fd = os.open(name, _FILE_FLAGS, self._create_mode(member), dir_fd=pfd)
        try:
            if member.sparse is not None:
                sparse: list[tuple[int, int]] = list(cast(Any, member.sparse))
                for offset, length in sparse:
                    _copy_at(src, fd, offset, length, entry)
            else:
                _copy_at(src, fd, 0, member.size, entry)
            os.ftruncate(fd, member.size)
            self._finish_file(fd, member, entry)
        finally:
            os.close(fd)

    def _t_symlink(self, pfut: Future[int], name: str, member: tarfile.TarInfo, entry: str) -> None:
        pfd = pfut.result()
        self._make_room(pfd, name)
        # The target is only text: a symlink may point anywhere, we never follow it.
        os.symlink(member.linkname, name, dir_fd=pfd)
        if not (self._fast_meta and member.uid == self._euid and member.gid == self._egid):
            self._own(pfd, name, member)
        if member.pax_headers:
            self._set_xattrs(f"/proc/self/fd/{pfd}/{name}", member, entry)
        ns = _mtime_ns(member)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _t_node(self, pfut: Future[int], name: str, member: tarfile.TarInfo, entry: str) -> None:
        pfd = pfut.result()
        self._make_room(pfd, name)
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

    def _t_hardlink(
        self,
        pfut: Future[int],
        name: str,
        tfut: Future[int] | None,
        tparent: str,
        tname: str,
        target: str,
        written: Future[Any] | None,
        member: tarfile.TarInfo,
        entry: str,
    ) -> None:
        pfd = pfut.result()
        if written is not None:
            written.result()
        own_fd = None
        tpfd: int | None
        if tfut is not None:
            tpfd = tfut.result()
        else:
            try:
                tpfd = own_fd = open_beneath(self.root_fd, tparent, f"entry {entry!r}")
            except FileNotFoundError:
                tpfd = None
        try:
            self._make_room(pfd, name)
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

    def _t_dir_final(self, rel: str, mode: int, ns: int) -> None:
        fut = self.dirs.get(rel)
        if fut is not None:
            fd = fut.result()
            os.chmod(fd, mode)
            os.utime(fd, ns=(ns, ns))
            return
        fd = open_beneath(self.root_fd, rel, rel)
        try:
            os.chmod(fd, mode)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def finish(self) -> None:
        self.drain()
        # directories last: their children's creation moved their mtimes
        # implicit first: an explicit entry for the same dir, if any, wins
        final = {rel: (mode, ns) for rel, mode, ns in self.implicit_dirs + self.deferred_dirs}
        for rel, (mode, ns) in final.items():
            self._submit(self._t_dir_final, rel, mode, ns)
        self.drain()


def _current_umask() -> int:
    """The umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: never trust creation to get the mode right


def _done(value: int) -> Future[int]:
    fut: Future[int] = Future()
    fut.set_result(value)
    return fut


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
            # the tar may exceed the files' bytes by its headers, not by more
            pipe = _Pipeline(
                raw, opts.max_size + (16 << 20) + 2048 * min(opts.max_entries, 1 << 20)
            )
            try:
                try:
                    tf = tarfile.open(  # noqa: SIM115
                        fileobj=cast(Any, pipe), mode="r:", tarinfo=_FastTarInfo
                    )
                except tarfile.ReadError as e:
                    raise StorageError(f"layer is not a tar archive: {e}") from e
                try:
                    for member in tf:
                        applier.apply(member, tf)
                        if progress is not None and applier.entries % 256 == 0:
                            progress(pipe.size)
                except tarfile.TarError as e:
                    raise StorageError(f"layer tar is corrupt: {e}") from e
                applier.finish()
                pipe.drain()
            finally:
                pipe.close()
        return ApplyResult(
            diff_id=f"sha256:{pipe.hexdigest()}",
            size=pipe.size,
            entries=applier.entries,
            unpacked_size=applier.unpacked,
            compression=pipe.kind,
        )
    except EOFError as e:
        raise StorageError(f"layer stream is truncated: {e}") from e
    except OSError as e:  # e.g. mknod without CAP_MKNOD, a full disk
        raise StorageError(f"unpacking layer into {os.fspath(root)}: {e}") from e
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

"""Random-access reading and append-only writing of the tar files image archives are.

Archives can hold gigabytes of layers, so neither side extracts to a directory:
the reader indexes member offsets once and serves each member with `pread`
(safe from several copy threads at once), and the writer streams a member of
unknown length behind a reserved header that it rewrites when the size is known,
truncating the member away again if the content fails verification.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from portside.errors import FileAccessError, InvalidArgument, InvalidDocument, NotFound

__all__ = ["CHUNK", "SectionReader", "TarIndex", "TarWriter"]

CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


class SectionReader(io.RawIOBase):
    """A read-only window [offset, offset+size) of a file descriptor, read with pread."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._start = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._start + self._pos)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        while True:
            want = min(size, self._size - self._pos)
            if want <= 0:
                return
            data = os.pread(self._fd, want, self._start + self._pos)
            if not data:
                raise InvalidDocument("archive ends inside a member (truncated?)")
            self._pos += len(data)
            yield data


def _norm(name: str) -> str:
    name = posixpath.normpath("/" + name.lstrip("/"))
    return name.lstrip("/")


class TarIndex:
    """The members of an uncompressed tar file by normalised name, links resolved."""

    def __init__(self, path: str | os.PathLike[str], what: str | None = None) -> None:
        self.path = os.fspath(path)
        self.what = what or self.path
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._members = self._scan()
        except BaseException:
            os.close(self._fd)
            raise

    def _scan(self) -> dict[str, tarfile.TarInfo]:
        total = os.fstat(self._fd).st_size
        members: dict[str, tarfile.TarInfo] = {}
        with os.fdopen(os.dup(self._fd), "rb") as f:
            try:
                with tarfile.open(fileobj=f, mode="r:") as tf:
                    for m in tf:
                        if m.isfile() and m.offset_data + m.size > total:
                            raise InvalidDocument(
                                f"{self.what}: truncated archive: {m.name} needs "
                                f"{m.offset_data + m.size} bytes, file has {total}"
                            )
                        members[_norm(m.name)] = m
            except tarfile.TarError as err:
                raise InvalidDocument(f"{self.what}: not a readable tar archive: {err}") from None
        return members

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TarIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def names(self) -> list[str]:
        return list(self._members)

    def _resolve(self, name: str, depth: int = 0) -> tarfile.TarInfo | None:
        m = self._members.get(_norm(name))
        if m is None or depth > 16:
            return None
        if m.issym():
            target = m.linkname
            if not target.startswith("/"):
                target = posixpath.join(posixpath.dirname(_norm(m.name)), target)
            return self._resolve(target, depth + 1)
        if m.islnk():
            return self._resolve(m.linkname, depth + 1)
        return m

    def exists(self, name: str) -> bool:
        m = self._resolve(name)
        return m is not None and m.isfile()

    def _file(self, name: str) -> tarfile.TarInfo:
        m = self._resolve(name)
        if m is None or not m.isfile():
            raise NotFound(f"{self.what}: no file {name!r} in the archive")
        return m

    def size(self, name: str) -> int:
        return self._file(name).size

    def open(self, name: str) -> SectionReader:
        m = self._file(name)
        return SectionReader(self._fd, m.offset_data, m.size)

    def chunks(self, name: str) -> Iterator[bytes]:
        return self.open(name).chunks()

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        m = self._file(name)
        if m.size > limit:
            raise InvalidDocument(f"{self.what}: {name} is {m.size} bytes, too large to be JSON")
        return self.open(name).read()


class TarWriter:
    """Appends members to a seekable binary file; members may be streamed of unknown size."""

    def __init__(self, fileobj: BinaryIO, mtime: int = 0) -> None:
        self._f = fileobj
        self._mtime = mtime
        self._dirs: set[str] = set()

    def _info(self, name: str, size: int, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.size = size
        ti.type = kind
        ti.mode = mode
        ti.mtime = self._mtime
        ti.uname = ti.gname = ""
        return ti

    def _header(self, ti: tarfile.TarInfo) -> bytes:
        return ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")

    def _parents(self, name: str) -> None:
        parent = posixpath.dirname(name)
        if parent and parent not in self._dirs:
            self.add_dir(parent)

    def add_dir(self, name: str) -> None:
        name = name.rstrip("/")
        if name in self._dirs:
            return
        self._parents(name)
        self._dirs.add(name)
        self._f.write(self._header(self._info(name + "/", 0, tarfile.DIRTYPE, 0o755)))

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._parents(name)
        self._f.write(self._header(self._info(name, len(data), tarfile.REGTYPE, mode)))
        self._f.write(data)
        self._pad(len(data))

    def add_symlink(self, name: str, target: str) -> None:
        self._parents(name)
        ti = self._info(name, 0, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self._f.write(self._header(ti))

    def _pad(self, size: int) -> None:
        rem = size % _BLOCK
        if rem:
            self._f.write(b"\0" * (_BLOCK - rem))

    def mark(self) -> int:
        """The current end, to which `rollback` can return."""
        return self._f.tell()

    def rollback(self, mark: int) -> None:
        self._f.seek(mark)
        self._f.truncate()

    def add_stream(
        self,
        name: str,
        chunks: Iterable[bytes],
        mode: int = 0o644,
        final_name: Callable[[], str] | None = None,
    ) -> int:
        """Write a member whose size is known only at the end; on error, nothing remains.

        `final_name`, if given, names the member once its content is known (a layer
        is named by its diffID); it must be as long as `name`, so the header keeps its size.
        """
        self._parents(name)
        start = self._f.tell()
        placeholder = self._header(self._info(name, 0, tarfile.REGTYPE, mode))
        try:
            self._f.write(placeholder)
            size = 0
            for chunk in chunks:
                self._f.write(chunk)
                size += len(chunk)
            self._pad(size)
            end = self._f.tell()
            if final_name is not None:
                name = final_name()
            header = self._header(self._info(name, size, tarfile.REGTYPE, mode))
            if len(header) != len(placeholder):
                raise ValueError(f"tar header of {name!r} changed length; names must match")
            self._f.seek(start)
            self._f.write(header)
            self._f.seek(end)
        except BaseException:
            self.rollback(start)
            raise
        return size

    def finish(self) -> None:
        self._f.write(b"\0" * (2 * _BLOCK))
        self._f.flush()


class PendingArchive:
    """A tar archive written beside `path` under a temp name and renamed into place by
    publish(), so a failed save never leaves a truncated archive where the user asked."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        parent = os.path.dirname(self.path)
        if os.path.isdir(self.path):
            raise InvalidArgument(f"{self.path}: is a directory")
        if not os.path.isdir(parent):
            raise InvalidArgument(f"{parent}: no such directory for the archive")
        try:
            fd, self._tmp = tempfile.mkstemp(
                prefix=f".{os.path.basename(self.path)}.", suffix=".tmp", dir=parent
            )
        except OSError as err:
            raise FileAccessError(f"{self.path}: cannot create: {err.strerror}") from None
        self._file = os.fdopen(fd, "w+b")
        self._tar = TarWriter(self._file)
        self._done = False

    def publish(self) -> None:
        """End the tar, make it durable, and rename it over `path`."""
        self._tar.finish()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.chmod(self._tmp, 0o644)
        os.rename(self._tmp, self.path)
        self._done = True

    def close(self) -> None:
        """Discard the archive unless it was published."""
        if not self._file.closed:
            self._file.close()
        if not self._done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._done = True

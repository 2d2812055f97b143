"""What kind of archive a file is, and the stream (de)compression archives need.

`portside load -i FILE` must accept whatever `docker save`, `podman save` and
`skopeo copy` wrote, possibly gzip- or zstd-compressed, without being told which:
the format is recognised from the members the tar holds, never from the name.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO, cast

from portside.errors import InvalidArgument, InvalidDocument, NotFound

__all__ = [
    "DOCKER_ARCHIVE",
    "OCI_ARCHIVE",
    "ChunkReader",
    "classify",
    "compress_gzip",
    "decompress_chunks",
    "decompressed_tar",
    "detect_archive",
    "detect_compression",
    "open_decompressed",
    "read_chunks",
]

OCI_ARCHIVE = "oci-archive"
DOCKER_ARCHIVE = "docker-archive"
CHUNK = 1 << 20

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZIP2_MAGIC = b"BZh"


def detect_compression(head: bytes) -> str | None:
    """ "gzip", "zstd", "xz", "bzip2" or None for anything else (a plain tar)."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if head.startswith(_BZIP2_MAGIC) and len(head) > 3 and head[3:4].isdigit():
        return "bzip2"
    return None


class ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks, so stream decoders can read it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._it = iter(chunks)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = memoryview(next(self._it))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._buf))
        buffer[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def open_decompressed(raw: BinaryIO, compression: str | None) -> BinaryIO:
    """A reader of `raw`'s decompressed bytes (multi-member gzip and multi-frame zstd too)."""
    if compression is None:
        return raw
    if compression == "gzip":
        from isal import igzip

        return cast(BinaryIO, igzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return cast(BinaryIO, reader)
    if compression == "xz":
        import lzma

        return cast(BinaryIO, lzma.LZMAFile(raw, mode="rb"))
    if compression == "bzip2":
        import bz2

        return cast(BinaryIO, bz2.BZ2File(raw, mode="rb"))
    raise InvalidArgument(f"unknown compression {compression!r}")


def read_chunks(reader: BinaryIO, what: str) -> Iterator[bytes]:
    """A decoder's output in chunks; a decoding error becomes one InvalidDocument line."""
    try:
        while True:
            data = reader.read(CHUNK)
            if not data:
                return
            yield data
    except (OSError, EOFError, ValueError) as err:
        raise InvalidDocument(f"{what}: cannot decompress: {err}") from None
    except Exception as err:  # zstandard.ZstdError does not derive from OSError
        if type(err).__module__.startswith("zstandard"):
            raise InvalidDocument(f"{what}: cannot decompress: {err}") from None
        raise


def decompress_chunks(
    chunks: Iterable[bytes], what: str = "stream"
) -> tuple[str | None, Iterator[bytes]]:
    """Sniff the compression of a chunk stream and return it with the plain chunks."""
    it = iter(chunks)
    head = b""
    pending: list[bytes] = []
    for chunk in it:
        pending.append(chunk)
        head += chunk
        if len(head) >= 8:
            break
    compression = detect_compression(head)

    def replay() -> Iterator[bytes]:
        yield from pending
        yield from it

    if compression is None:
        return None, replay()
    reader = open_decompressed(ChunkReader(replay()), compression)  # type: ignore[arg-type]
    return compression, read_chunks(reader, what)


def compress_gzip(chunks: Iterable[bytes], level: int = 1) -> Iterator[bytes]:
    """Gzip with ISA-L (several times faster than zlib at comparable ratio)."""
    from isal import isal_zlib

    comp = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    for chunk in chunks:
        out = comp.compress(chunk)
        if out:
            yield out
    yield comp.flush()


def _read_head(path: str, n: int = 512) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def decompressed_tar(path: str | os.PathLike[str], tmpdir: str | None = None) -> tuple[str, bool]:
    """A plain-tar path for `path`: itself, or a decompressed temp copy (True: delete it)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise NotFound(f"{path}: no such file")
    compression = detect_compression(_read_head(path, 8))
    if compression is None:
        return path, False
    fd, tmp = tempfile.mkstemp(prefix=".portside-archive-", suffix=".tar", dir=tmpdir)
    try:
        with open(path, "rb") as raw, os.fdopen(fd, "wb") as out:
            reader = open_decompressed(raw, compression)
            for chunk in read_chunks(reader, path):
                out.write(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, True


def classify(names: Iterable[str], what: str) -> str:
    """DOCKER_ARCHIVE or OCI_ARCHIVE from a tar's member names.

    A tar that is both (Docker 25+ writes index.json beside manifest.json) counts as
    a docker-archive, since its manifest.json names the tags the user expects.
    """
    found = {n.removeprefix("./").lstrip("/") for n in names}
    if "manifest.json" in found:
        return DOCKER_ARCHIVE
    if "index.json" in found:
        return OCI_ARCHIVE
    raise InvalidDocument(
        f"{what}: neither a docker-archive (no manifest.json) nor an oci-archive (no index.json)"
    )


def detect_archive(path: str | os.PathLike[str]) -> str:
    """DOCKER_ARCHIVE or OCI_ARCHIVE, from the members of the (maybe compressed) tar."""
    from portside.images.transports.tarstream import TarIndex

    path = os.fspath(path)
    if os.path.isdir(path):
        raise InvalidArgument(f"{path}: is a directory, not an archive")
    plain, temporary = decompressed_tar(path)
    try:
        with TarIndex(plain, what=path) as index:
            return classify(index.names(), path)
    finally:
        if temporary:
            os.unlink(plain)

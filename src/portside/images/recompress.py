"""Re-encode a layer blob with another compression (`push --compression-format zstd`).

The tar inside is unchanged, so the config's diff IDs stay valid; only the
layer descriptor (digest, size, media type) changes. The output goes to a
temporary file so its digest is known before the upload starts.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterator
from typing import Any

from portside.errors import InvalidDocument
from portside.oci.digest import Digest, DigestVerifier

__all__ = ["decompress_stream", "recompress_to_file"]

CHUNK = 1 << 20


def decompress_stream(chunks: Iterator[bytes], compression: str | None) -> Iterator[bytes]:
    if compression is None:
        yield from chunks
        return
    if compression == "gzip":
        d: Any = zlib.decompressobj(wbits=31)
        for chunk in chunks:
            data = chunk
            while data:
                out = d.decompress(data)
                if out:
                    yield out
                if d.eof:  # concatenated gzip members
                    data = d.unused_data
                    d = zlib.decompressobj(wbits=31)
                else:
                    data = b""
        tail = d.flush()
        if tail:
            yield tail
        return
    if compression == "zstd":
        import zstandard

        z = zstandard.ZstdDecompressor().decompressobj()
        for chunk in chunks:
            out = z.decompress(chunk)
            if out:
                yield out
        return
    raise InvalidDocument(f"unknown layer compression {compression!r}")


def _compressor(compression: str | None) -> Any:
    if compression == "gzip":
        try:
            from isal import isal_zlib

            return isal_zlib.compressobj(6, isal_zlib.DEFLATED, 31)
        except ImportError:  # pragma: no cover - isal is a dependency
            return zlib.compressobj(6, zlib.DEFLATED, 31)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).compressobj()
    return None


def recompress_to_file(
    chunks: Iterator[bytes], source: str | None, target: str | None, directory: str | None = None
) -> tuple[str, Digest, int]:
    """Write the layer re-encoded to a temp file; returns (path, digest, size). Caller unlinks."""
    fd, path = tempfile.mkstemp(prefix="layer-", dir=directory)
    verifier = DigestVerifier()
    comp = _compressor(target)
    try:
        with os.fdopen(fd, "wb") as f:
            for data in decompress_stream(chunks, source):
                out = comp.compress(data) if comp is not None else data
                if out:
                    f.write(out)
                    verifier.update(out)
            if comp is not None:
                out = comp.flush()
                f.write(out)
                verifier.update(out)
    except BaseException:
        os.unlink(path)
        raise
    return path, verifier.digest(), verifier.size


def file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk

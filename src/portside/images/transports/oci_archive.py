"""The OCI archive transport (`oci-archive:FILE[:REF]`): an OCI image layout in one tar.

Read in place (members served by offset, never extracted; a compressed archive
is decompressed once to a temp file first). Written as a stream straight into a
temp tar beside the target, renamed over it only on commit, so a failed save
never leaves a half archive under the user's file name. One writer can hold
several images (`portside save -o F a b`), each named in index.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

from portside.errors import InvalidArgument
from portside.images.archive_detect import decompressed_tar
from portside.images.transport import BlobInfo
from portside.images.transports.oci_layout import (
    LAYOUT_FILE,
    LAYOUT_VERSION,
    REF_NAME,
    Blob,
    LayoutReader,
    OciLayoutSource,
    blob_path,
    check_not_schema1,
    parse_oci_spec,
    verified,
)
from portside.images.transports.tarstream import PendingArchive, TarIndex
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest

__all__ = [
    "OciArchive",
    "OciArchiveDestination",
    "OciArchiveSource",
    "OciArchiveWriter",
    "parse_oci_archive_spec",
]


def parse_oci_archive_spec(spec: str) -> tuple[str, str | None]:
    """`oci-archive:FILE[:REF]` -> (FILE, REF)."""
    return parse_oci_spec(spec, prefix="oci-archive")


class OciArchive:
    """An opened (maybe compressed) oci-archive; lists its images and makes sources."""

    def __init__(
        self, path: str | os.PathLike[str], tmpdir: str | None = None, name: str | None = None
    ) -> None:
        plain, self._temporary = decompressed_tar(os.fspath(path), tmpdir)
        self.path = name or os.fspath(path)  # what errors call the archive
        self._plain = plain
        try:
            self.index = TarIndex(plain, what=self.path)
            self.reader = LayoutReader(self.index, self.path)
        except BaseException:
            self._drop_temp()
            raise
        self._users = 0

    def _drop_temp(self) -> None:
        if self._temporary:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._plain)
            self._temporary = False

    def entries(self) -> list[dict[str, Any]]:
        return list(self.reader.entries)

    def source(
        self, ref: str | None = None, entry: dict[str, Any] | None = None
    ) -> OciLayoutSource:
        """A source for one image; it stays valid until this archive is closed."""
        return OciLayoutSource(_Shared(self.index), ref, what=self.path, entry=entry)

    def close(self) -> None:
        self.index.close()
        self._drop_temp()

    def __enter__(self) -> OciArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Shared:
    """The archive's TarIndex, minus close(): the archive owns it, not each source."""

    def __init__(self, index: TarIndex) -> None:
        self._index = index

    def exists(self, name: str) -> bool:
        return self._index.exists(name)

    def size(self, name: str) -> int:
        return self._index.size(name)

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        return self._index.read(name, limit)

    def chunks(self, name: str) -> Iterator[bytes]:
        return self._index.chunks(name)


class OciArchiveSource(OciLayoutSource):
    """ImageSource for `oci-archive:FILE[:REF]` that owns its archive."""

    def __init__(self, path: str | os.PathLike[str], ref: str | None = None) -> None:
        self.archive = OciArchive(path)
        try:
            super().__init__(_Shared(self.archive.index), ref, what=self.archive.path)
        except BaseException:
            self.archive.close()
            raise

    def close(self) -> None:
        self.archive.close()


class OciArchiveWriter(PendingArchive):
    """A tar being written next to `path`; commit() renames it into place."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._tar.add_bytes(LAYOUT_FILE, LAYOUT_VERSION)
        self._tar.add_dir("blobs")
        self._blobs: dict[str, int] = {}
        self._manifests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def has_blob(self, blob: BlobInfo) -> bool:
        size = self._blobs.get(blob.digest)
        return size is not None and (blob.size < 0 or size == blob.size)

    def put_blob(self, blob: BlobInfo, chunks: Iterator[bytes]) -> None:
        with self._lock:
            if blob.digest in self._blobs:
                for _ in verified(chunks, blob):
                    pass
                return
            size = self._tar.add_stream(blob_path(blob.digest), verified(chunks, blob))
            self._blobs[blob.digest] = size

    def add_manifest(self, raw: bytes, media_type: str) -> dict[str, Any]:
        digest = Digest.from_bytes(raw)
        self.put_blob(Blob(digest, len(raw), media_type), iter([raw]))
        return {"mediaType": media_type, "digest": str(digest), "size": len(raw)}

    def add_entry(self, entry: dict[str, Any], ref: str | None) -> None:
        entry = dict(entry)
        if ref is not None:
            entry["annotations"] = {REF_NAME: ref}
            self._manifests = [e for e in self._manifests if LayoutReader.ref_name(e) != ref]
        self._manifests.append(entry)

    def destination(self, ref: str | None = None) -> OciArchiveDestination:
        return OciArchiveDestination(self, ref)

    def commit(self) -> None:
        if not self._manifests:
            raise InvalidArgument(f"{self.path}: no image was written")
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": self._manifests}
        self._tar.add_bytes("index.json", json.dumps(index, separators=(",", ":")).encode())
        self.publish()


class OciArchiveDestination:
    """ImageDestination for one image of an oci-archive.

    Built from a path it owns a writer and commit() finishes the file; built from
    a writer (several images in one archive) commit() only lists the image.
    """

    def __init__(
        self, target: str | os.PathLike[str] | OciArchiveWriter, ref: str | None = None
    ) -> None:
        if isinstance(target, OciArchiveWriter):
            self.writer, self._owns = target, False
        else:
            self.writer, self._owns = OciArchiveWriter(target), True
        self.ref = ref
        self._top: dict[str, Any] | None = None

    def supported_manifest_types(self) -> list[str]:
        return [mt.OCI_MANIFEST, mt.OCI_INDEX]

    def has_blob(self, blob: BlobInfo) -> bool:
        return self.writer.has_blob(blob)

    def put_blob(self, blob: BlobInfo, chunks: Iterator[bytes]) -> None:
        self.writer.put_blob(blob, chunks)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        check_not_schema1(media_type, f"{self.writer.path}: manifest")
        desc = self.writer.add_manifest(raw, media_type)
        if instance_digest is None:
            self._top = desc

    def commit(self) -> None:
        if self._top is None:
            raise InvalidArgument(f"{self.writer.path}: nothing to commit: no manifest was written")
        self.writer.add_entry(self._top, self.ref)
        if self._owns:
            self.writer.commit()

    def close(self) -> None:
        if self._owns:
            self.writer.close()

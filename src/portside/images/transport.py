"""The seam every image move goes through: one copy routine over transports.

Pull, push, save, load and import are all `copy(source, destination)` between
two of these (registry, OCI layout, OCI archive, docker-archive, the local
store), as containers/image does, so each transport is written once and
every pair of them works.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class BlobInfo(Protocol):
    """What a transport needs to know about a blob: a descriptor's core."""

    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def media_type(self) -> str: ...


class ImageSource(Protocol):
    """Reads one image (or index) from somewhere."""

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        """The exact manifest bytes and their media type; a digest picks an index child."""
        ...

    def get_blob(self, blob: BlobInfo) -> Iterator[bytes]:
        """The blob's bytes in chunks; callers verify digest and size."""
        ...

    def close(self) -> None: ...


class ImageDestination(Protocol):
    """Writes one image (or index) somewhere; nothing is visible before commit()."""

    def supported_manifest_types(self) -> list[str]:
        """Media types it accepts, preferred first; copy converts when needed."""
        ...

    def has_blob(self, blob: BlobInfo) -> bool: ...

    def put_blob(self, blob: BlobInfo, chunks: Iterator[bytes]) -> None:
        """Store a blob, verifying digest and size; a mismatch leaves nothing behind."""
        ...

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        """Store manifest bytes unchanged; instance_digest marks an index child."""
        ...

    def commit(self) -> None:
        """Make the image visible (tag it, write index.json, close the archive)."""
        ...

    def close(self) -> None:
        """Release resources; without a prior commit, discard everything written."""
        ...

"""A registry repository as a transport (`docker://HOST/REPO:TAG`), over RegistryClient."""

from __future__ import annotations

from collections.abc import Iterator

from portside.images.transport import BlobInfo
from portside.oci import mediatypes as mt
from portside.registry.client import RegistryClient

__all__ = ["RegistryDestination", "RegistrySource"]


class RegistrySource:
    """Reads `repo:tag` (or `repo@digest`) from one registry endpoint."""

    def __init__(self, client: RegistryClient, repo: str, reference: str) -> None:
        self.client = client
        self.repo = repo
        self.reference = reference
        self.digest: str | None = None  # of the top manifest, once fetched
        self._top: tuple[bytes, str] | None = None

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        if instance_digest is None and self._top is not None:
            return self._top
        raw, media_type, digest = self.client.get_manifest(
            self.repo, instance_digest or self.reference
        )
        if instance_digest is None:
            self.digest = str(digest)
            self._top = (raw, media_type)
        return raw, media_type

    def get_blob(self, blob: BlobInfo) -> Iterator[bytes]:
        return self.client.blob_chunks(self.repo, blob.digest, 0, blob.size)

    def get_blob_at(self, blob: BlobInfo, offset: int) -> Iterator[bytes]:
        """The blob from `offset` (a Range request), to finish a partial ingest."""
        return self.client.blob_chunks(self.repo, blob.digest, offset, blob.size)

    def close(self) -> None:
        pass


class RegistryDestination:
    """Pushes to `repo:tag`: blobs first (skipping, mounting or uploading), then manifests."""

    def __init__(
        self,
        client: RegistryClient,
        repo: str,
        tag: str | None,
        mount_from: list[str] | None = None,
        chunk_size: int | None = None,
    ) -> None:
        self.client = client
        self.repo = repo
        self.tag = tag
        self.mount_from = [r for r in (mount_from or []) if r != repo]
        self.chunk_size = chunk_size
        self.pushed_digest: str | None = None
        self.mounted: list[str] = []

    def supported_manifest_types(self) -> list[str]:
        return [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST]

    def has_blob(self, blob: BlobInfo) -> bool:
        if self.client.has_blob(self.repo, blob.digest):
            return True
        for other in self.mount_from:
            if self.client.mount_blob(self.repo, blob.digest, other):
                self.mounted.append(blob.digest)
                return True
        return False

    def put_blob(self, blob: BlobInfo, chunks: Iterator[bytes]) -> None:
        self.client.upload_blob(self.repo, blob.digest, blob.size, chunks, self.chunk_size)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        reference = instance_digest or self.tag
        if reference is None:
            from portside.oci.digest import Digest

            reference = str(Digest.from_bytes(raw))
        digest = self.client.put_manifest(self.repo, reference, raw, media_type)
        if instance_digest is None:
            self.pushed_digest = str(digest)

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass

"""The local store as a transport: what `pull` writes into and `push`/`save` read from.

The destination holds a content lease from the first blob to the commit, so a
concurrent `image prune` or GC cannot remove blobs of an image being pulled,
and a killed pull leaves only blobs the next GC may take (or the next pull reuses).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Iterator

from portside.errors import InvalidDocument, NotFound
from portside.images.store import ImageRecord, ImageStore
from portside.images.transport import BlobInfo
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest

__all__ = ["LocalDestination", "LocalSource"]


class LocalSource:
    """Reads one stored image (its platform manifest) from the content store, or with
    `index` the whole index it was pulled through (`push --all`)."""

    def __init__(self, store: ImageStore, image: ImageRecord, index: str | None = None) -> None:
        self.store = store
        self.image = image
        self.index = index

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        if instance_digest is None and self.index is not None:
            raw = self.store.content.read_bytes(self.index)
            return raw, _media_type_of(raw)
        digest = instance_digest or self.image.manifest_digest
        try:
            raw = self.store.content.read_bytes(digest)
        except NotFound:
            raise NotFound(
                f"manifest {digest} of the index is not stored (pull with --all-platforms)"
            ) from None
        if instance_digest is None:
            return raw, self.image.media_type
        return raw, _media_type_of(raw)

    def get_blob(self, blob: BlobInfo) -> Iterator[bytes]:
        return self.store.content.read_chunks(blob.digest)

    def close(self) -> None:
        pass


def _prefetched(chunks: Iterator[bytes], depth: int = 32) -> Iterator[bytes]:
    """Read `chunks` in a helper thread, so the network read overlaps hashing and writing
    (hashlib and file writes release the GIL); errors surface here, in order."""
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def pump() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    break
                q.put(chunk)
            q.put(None)
        except BaseException as err:
            q.put(err)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    t = threading.Thread(target=pump, name="blob-read", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a pump waiting on a full queue
                q.get_nowait()
        t.join(timeout=30)


def _media_type_of(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidDocument("stored manifest is not JSON") from None
    value = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(value, str):
        return value
    return mt.OCI_INDEX if isinstance(doc, dict) and "manifests" in doc else mt.OCI_MANIFEST


class LocalDestination:
    """Writes into the content store; the image and its names appear at commit()."""

    def __init__(
        self,
        store: ImageStore,
        names: list[str] | None = None,
        repo_digest_repos: list[str] | None = None,
    ) -> None:
        self.store = store
        self.names = list(names or [])
        # repositories the image came from (e.g. the registry repo): RepoDigests
        self.repos = list(repo_digest_repos or [])
        self.lease = store.content.lease()
        self._manifests: dict[str, str] = {}  # digest -> media type of instances
        self._top: tuple[Digest, str] | None = None
        self.selected_instance: str | None = None  # set by copy() for an index
        self.image: ImageRecord | None = None
        self._committed = False
        self._wrote = False

    def supported_manifest_types(self) -> list[str]:
        return [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST]

    def has_blob(self, blob: BlobInfo) -> bool:
        return self.lease.protect(blob.digest)

    def put_blob(self, blob: BlobInfo, chunks: Iterator[bytes]) -> None:
        self.put_blob_resumable(blob, lambda offset: chunks, resumable=False)

    def put_blob_resumable(
        self,
        blob: BlobInfo,
        open_at: Callable[[int], Iterator[bytes]],
        resumable: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Store a blob, continuing a partial ingest a killed pull left when possible.

        Keyed by digest, so concurrent pulls of one blob wait for each other and
        the later ones find it committed.
        """
        self.lease.add(blob.digest)
        self._wrote = True
        content = self.store.content
        w = content.writer(f"blob-{blob.digest}", expected=blob.digest)
        if w is None:
            return
        with w:
            offset = w.offset if resumable else 0
            if offset == 0 or (blob.size >= 0 and offset > blob.size):
                w.truncate()
                offset = 0
            elif progress is not None:
                progress(offset)
            for chunk in _prefetched(open_at(offset)):
                w.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            w.commit(blob.size if blob.size >= 0 else None, blob.digest, f"blob {blob.digest}")

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        d = Digest.from_bytes(raw)
        self.lease.add(d)  # before it exists: a GC running now must keep it
        self._wrote = True
        if instance_digest is not None:
            self.store.content.put_bytes(raw, instance_digest)
            self._manifests[str(d)] = mt.base(media_type)
        else:
            self.store.content.put_bytes(raw)
            self._top = (d, mt.base(media_type))

    def commit(self) -> None:
        # under the shared GC lock: a GC sees either our lease or the new image as a root
        with self.store.content.gc_lock(shared=True):
            self._commit()

    def _commit(self) -> None:
        if self._top is None:
            raise InvalidDocument("nothing to commit: no manifest was written")
        top, top_type = self._top
        store = self.store
        index: Digest | None = None
        if mt.is_index(top_type):
            index = top
            store.add_index(top, top_type)
            images = []
            for digest, media_type in self._manifests.items():
                if mt.is_manifest(media_type):
                    images.append(store.add_image(digest, media_type))
            chosen = self.selected_instance or (str(images[0].manifest_digest) if images else None)
            if chosen is None:
                raise NotFound(f"index {top}: no platform manifest was copied")
            image = store.get_by_digest(chosen)
        else:
            image = store.add_image(top, top_type)
        for repo in self.repos:
            store.add_digest(repo, index or image.manifest_digest, image.manifest_digest)
            if index is not None:
                store.add_digest(repo, image.manifest_digest, image.manifest_digest)
        for name in self.names:
            store.set_name(name, image.manifest_digest, index)
        self.image = store.get_by_digest(image.manifest_digest)
        self._committed = True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.lease.release()
        if not self._committed and self._wrote:
            # a failed copy leaves nothing behind: drop what no image needs
            # (partial ingests stay, so a retry resumes them)
            with contextlib.suppress(Exception):
                self.store.gc()

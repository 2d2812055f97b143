"""A build step's writable root filesystem, and turning its changes into a layer.

One overlay (or vfs) snapshot over the parent's layer chain, mounted; steps
change files in it (a RUN container uses it as its root, COPY writes into it);
`commit` writes the changes as a layer blob straight into the content store
and adds the layer to the layer store over the parent. `close` unmounts and
removes the snapshot whatever happened, so a failed step leaves nothing.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from portside.oci import mediatypes as mt
from portside.oci.digest import Digest

if TYPE_CHECKING:
    from portside.content.store import ContentStore, Writer
    from portside.storage.layers import LayerStore


@dataclass(frozen=True)
class NewLayer:
    """A committed step's layer: its blob descriptor, diff ID and chain ID."""

    descriptor: dict[str, object]
    diff_id: str
    chain_id: str


class _WriterFile:
    """A content-store Writer as the file object the diff writer expects."""

    def __init__(self, w: Writer) -> None:
        self.w = w

    def write(self, data: bytes) -> int:
        self.w.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


class Workspace:
    """A mounted snapshot over `parent` (a chain ID, None for an empty root)."""

    def __init__(self, layers: LayerStore, parent: str | None) -> None:
        self.layers = layers
        self.parent = parent
        self.key = f"build-{os.urandom(16).hex()}"
        self._prepared = False
        layers.prepare(self.key, parent)
        self._prepared = True
        try:
            self.rootfs: Path = layers.mount(self.key, volatile=True)
        except BaseException:
            self.close()
            raise

    def commit(self, content: ContentStore, compression: str = "gzip") -> NewLayer:
        """The snapshot's changes as a layer: blob into `content`, layer into the store."""
        w = content.writer(f"build-layer-{os.urandom(16).hex()}")
        assert w is not None
        with w:
            result = self.layers.diff(self.key, _WriterFile(w), compression)  # type: ignore[arg-type]
            digest = w.commit(None, None, "build layer")
        layer = self.layers.unpack(
            str(result.diff_id), content.blob_path(digest), parent=self.parent
        )
        desc: dict[str, object] = {
            "mediaType": mt.layer_type(None if compression == "none" else compression),
            "digest": str(digest),
            "size": content.size(digest),
        }
        return NewLayer(desc, str(Digest.parse(str(result.diff_id))), str(layer.chain_id))

    def close(self) -> None:
        if self._prepared:
            self._prepared = False
            with contextlib.suppress(Exception):
                self.layers.remove_snapshot(self.key)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class View:
    """A read-only mounted tree of a layer chain (COPY --from a stage or an image)."""

    def __init__(self, layers: LayerStore, chain: str | None) -> None:
        self.layers = layers
        self.key = f"build-view-{os.urandom(16).hex()}"
        self._prepared = False
        layers.prepare(self.key, chain, readonly=chain is not None)
        self._prepared = True
        try:
            self.rootfs: Path = layers.mount(self.key)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._prepared:
            self._prepared = False
            with contextlib.suppress(Exception):
                self.layers.remove_snapshot(self.key)

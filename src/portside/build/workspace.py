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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from portside.linux.procfs import pid_alive
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest

if TYPE_CHECKING:
    from portside.content.store import ContentStore, Writer
    from portside.engine.local import LocalEngine
    from portside.storage.layers import LayerStore


def owned_name(kind: str) -> str:
    """`KIND-PID-RANDOM`: snapshots, containers and work dirs of a build carry the builder's
    PID, so a later build can tell the leftovers of a killed one (reap_stale)."""
    return f"{kind}-{os.getpid()}-{os.urandom(8).hex()}"


_OWNED = re.compile(r"^(?:build|buildview|buildtmp)-(\d+)-[0-9a-f]+")


def _builder_alive(name: str) -> bool:
    m = _OWNED.match(name)
    if m is None:
        return True  # not ours to judge
    # a live PID keeps its parts (a reused PID only delays the clean-up to a later build)
    return pid_alive(int(m.group(1)))


def reap_stale(engine: LocalEngine) -> list[str]:
    """Remove what builds killed with SIGKILL left (their process is gone): RUN containers
    in each runtime's state dir, work dirs under RUNROOT/build, snapshots (unmounted first).
    Live builds' parts are left alone."""
    import shutil

    from portside.engine.runtime_client import RuntimeClient, find_runtime

    gone: list[str] = []
    states = engine.runroot / "runtime"
    for state_root in states.iterdir() if states.is_dir() else []:
        for entry in state_root.iterdir():
            if _OWNED.match(entry.name) and not _builder_alive(entry.name):
                with contextlib.suppress(Exception):
                    RuntimeClient(find_runtime(state_root.name), state_root).delete(entry.name)
                if entry.exists():
                    shutil.rmtree(entry, ignore_errors=True)
                gone.append(entry.name)
    work = engine.runroot / "build"
    for entry in work.iterdir() if work.is_dir() else []:
        if not _builder_alive(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            gone.append(entry.name)
    for snap in engine.layers.snapshots():
        if _OWNED.match(snap.key) and not _builder_alive(snap.key):
            with contextlib.suppress(Exception):
                engine.layers.remove_snapshot(snap.key)
            gone.append(snap.key)
    return gone


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
        self.key = owned_name("build")
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
        blob = content.blob_path(digest)
        layer = None
        tar_size = self._adoptable(blob, result.entries, compression)
        if tar_size is not None:
            # the upper dir already is the layer (overlay's own format): move it into the
            # store rather than unpack the blob just written from it
            self.layers.unmount(self.key)
            layer = self.layers.adopt(
                str(result.diff_id),
                self.layers.upper_dir(self.key),
                parent=self.parent,
                size=tar_size,
                entries=result.entries,
            )
        if layer is None:
            layer = self.layers.unpack(str(result.diff_id), blob, parent=self.parent)
        desc: dict[str, object] = {
            "mediaType": mt.layer_type(None if compression == "none" else compression),
            "digest": str(digest),
            "size": content.size(digest),
        }
        return NewLayer(desc, str(Digest.parse(str(result.diff_id))), str(layer.chain_id))

    def _adoptable(self, blob: Path, entries: int, compression: str) -> int | None:
        """The uncompressed tar's size when the upper dir can be adopted as the layer:
        overlay, a gzip blob (its trailer holds the size mod 4 GiB, so only layers
        surely smaller than that), and no SOURCE_DATE_EPOCH (the blob's clamped mtimes
        would then differ from the dir's)."""
        if (
            self.layers.driver_name != "overlay"
            or compression != "gzip"
            or os.environ.get("SOURCE_DATE_EPOCH")
        ):
            return None
        files = 0
        for dirpath, _dirs, names in os.walk(self.layers.upper_dir(self.key)):
            for name in names:
                files += os.lstat(os.path.join(dirpath, name)).st_size
        if files + 1536 * entries + (1 << 20) >= 1 << 32:
            return None
        with open(blob, "rb") as f:
            f.seek(-4, os.SEEK_END)
            return int.from_bytes(f.read(4), "little")

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
        self.key = owned_name("buildview")
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

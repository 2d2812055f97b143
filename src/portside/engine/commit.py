"""`image mount`, `diff` and `commit`: the engine's views of snapshots as images.

A commit goes through the same copy() into the local store as an import or a
load does, so the new image is recorded (and its blobs leased) the same way.
The new layer is written once: the storage diff is both the blob stored in the
content store and the layer unpacked on top of the parent's chain, so running
the committed image unpacks nothing.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portside.errors import InvalidArgument, NotFound
from portside.images.transport import BlobInfo
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest

if TYPE_CHECKING:
    from portside.engine.local import LocalEngine
    from portside.images.store import ImageRecord
    from portside.storage.diff import Change

__all__ = ["CommitSource", "commit_container", "container_changes", "mount_image", "unmount_image"]

_CHUNK = 1 << 20


def mount_image(engine: LocalEngine, ref: str) -> Path:
    """A read-only merged tree of the image, its layers unpacked first if needed."""
    rec = engine.images.get(ref)
    top = engine._unpack(rec)
    return engine.layers.mount_image(top)


def unmount_image(engine: LocalEngine, ref: str) -> None:
    rec = engine.images.get(ref)
    from portside.storage.layers import chain_of

    diff_ids = (engine.images.config(rec).get("rootfs") or {}).get("diff_ids") or []
    if not diff_ids:
        raise InvalidArgument(f"image {rec.short_id} has no layers")
    engine.layers.unmount_image(str(chain_of(diff_ids)))


def container_changes(engine: LocalEngine, ref: str) -> list[Change]:
    doc = engine.record(ref)
    return engine.layers.changes(doc["snapshot"])


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _oci_layer(desc: dict[str, Any]) -> dict[str, Any]:
    """A parent's layer descriptor as an OCI manifest lists it (docker types mapped)."""
    media = str(desc.get("mediaType") or mt.OCI_LAYER_GZIP)
    if mt.is_docker(media) and not mt.is_nondistributable(media):
        media = mt.layer_type(mt.layer_compression(media))
    out: dict[str, Any] = {"mediaType": media, "digest": desc["digest"], "size": desc["size"]}
    if desc.get("urls"):
        out["urls"] = desc["urls"]
    return out


class CommitSource:
    """ImageSource of the committed image: the parent's blobs plus the new layer."""

    def __init__(
        self, engine: LocalEngine, config: bytes, manifest: bytes, layer: tuple[str, Path]
    ) -> None:
        self.engine = engine
        self.config = config
        self.config_digest = Digest.from_bytes(config)
        self.manifest = manifest
        self.layer_digest, self.layer_path = layer

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        if instance_digest is not None and instance_digest != Digest.from_bytes(self.manifest):
            raise NotFound(f"committed image has no manifest {instance_digest}")
        return self.manifest, mt.OCI_MANIFEST

    def get_blob(self, blob: BlobInfo) -> Iterator[bytes]:
        if blob.digest == self.config_digest:
            return iter([self.config])
        if blob.digest == self.layer_digest:
            return self._chunks(self.layer_path)
        return self.engine.images.content.read_chunks(blob.digest)

    @staticmethod
    def _chunks(path: Path) -> Iterator[bytes]:
        with open(path, "rb") as f:
            while data := f.read(_CHUNK):
                yield data

    def close(self) -> None:
        pass


def commit_container(
    engine: LocalEngine,
    ref: str,
    reference: str | None = None,
    *,
    changes: Sequence[str] = (),
    message: str | None = None,
    author: str | None = None,
    pause: bool = True,
) -> ImageRecord:
    """The container's changes as a new image over its own image (`portside commit`).

    A running container is paused while its changes are read (docker's default),
    so the layer is one moment's tree, not files half-written."""
    from portside.images.copy import CopyOptions, copy
    from portside.images.importer import apply_changes
    from portside.images.store import normalize_name
    from portside.images.transports.local import LocalDestination

    names = [normalize_name(reference)] if reference else []
    doc = engine.record(ref)
    parent = engine.images.get(doc["image_id"])
    parent_config = engine.images.config(parent)
    container_config = apply_changes(dict(parent_config.get("config") or {}), changes)
    tmpdir = Path(engine.images.root) / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".portside-commit-", dir=tmpdir))
    try:
        blob = work / "layer.tar.gz"
        paused = False
        if pause and engine.state_of(doc).status == "running":
            engine.pause(doc["id"])
            paused = True
        try:
            result, _layer = engine.layers.commit(doc["snapshot"], blob, "gzip")
        finally:
            if paused:
                engine.unpause(doc["id"])
        created = _now()
        history: dict[str, Any] = {"created": created, "created_by": "portside commit"}
        if author:
            history["author"] = author
        if message:
            history["comment"] = message
        config = dict(parent_config)
        config["created"] = created
        if author:
            config["author"] = author
        else:
            config.pop("author", None)
        config["config"] = container_config
        rootfs = dict(config.get("rootfs") or {"type": "layers"})
        rootfs["diff_ids"] = [*(rootfs.get("diff_ids") or []), str(result.diff_id)]
        config["rootfs"] = rootfs
        config["history"] = [*(config.get("history") or []), history]
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        layers = [_oci_layer(d) for d in engine.images.layers(parent)]
        layers.append(
            {"mediaType": mt.OCI_LAYER_GZIP, "digest": str(result.digest), "size": result.size}
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "digest": str(Digest.from_bytes(config_bytes)),
                "size": len(config_bytes),
            },
            "layers": layers,
        }
        manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
        source = CommitSource(engine, config_bytes, manifest_bytes, (str(result.digest), blob))
        dest = LocalDestination(engine.images, names=names)
        try:
            copy(source, dest, CopyOptions())
        finally:
            dest.close()
        assert dest.image is not None
        return dest.image
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(work / "layer.tar.gz")
        with contextlib.suppress(OSError):
            os.rmdir(work)

"""copy() between two in-memory transports (pure: no registry needed for these rules)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from portside.errors import DigestMismatch, NotFound, UnsupportedMediaType
from portside.images.copy import CopyOptions, copy
from portside.images.store import ImageStore
from portside.images.transport import BlobInfo
from portside.images.transports.local import LocalDestination
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest


class MemorySource:
    """An ImageSource over dicts: the smallest real transport."""

    def __init__(self, top: bytes, top_type: str, blobs: dict[str, bytes]) -> None:
        self.top = (top, top_type)
        self.blobs = blobs
        self.fetched: list[str] = []

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        if instance_digest is None:
            return self.top
        raw = self.blobs[instance_digest]
        return raw, json.loads(raw).get("mediaType", mt.OCI_MANIFEST)

    def get_blob(self, blob: BlobInfo) -> Iterator[bytes]:
        self.fetched.append(blob.digest)
        data = self.blobs[blob.digest]
        yield data[:7]
        yield data[7:]

    def close(self) -> None:
        pass


class MemoryDestination:
    def __init__(self, types: list[str]) -> None:
        self.types = types
        self.blobs: dict[str, bytes] = {}
        self.manifests: list[tuple[bytes, str, str | None]] = []
        self.committed = False

    def supported_manifest_types(self) -> list[str]:
        return self.types

    def has_blob(self, blob: BlobInfo) -> bool:
        return blob.digest in self.blobs

    def put_blob(self, blob: BlobInfo, chunks: Iterator[bytes]) -> None:
        self.blobs[blob.digest] = b"".join(chunks)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        self.manifests.append((raw, media_type, instance_digest))

    def commit(self) -> None:
        self.committed = True

    def close(self) -> None:
        pass


def _tar(content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _image(
    arch: str = "amd64", layer_type: str = mt.OCI_LAYER_GZIP
) -> tuple[bytes, dict[str, bytes]]:
    tar = _tar(b"hello " + arch.encode())
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps(
        {"architecture": arch, "os": "linux", "rootfs": {"type": "layers",
         "diff_ids": [Digest.from_bytes(tar)]}}
    ).encode()  # fmt: skip
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": Digest.from_bytes(config),
                   "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": Digest.from_bytes(layer),
                    "size": len(layer)}],
    }  # fmt: skip
    raw = json.dumps(manifest).encode()
    return raw, {Digest.from_bytes(config): config, Digest.from_bytes(layer): layer}


def test_copies_exact_bytes_and_skips_present_blobs() -> None:
    raw, blobs = _image()
    src = MemorySource(raw, mt.OCI_MANIFEST, blobs)
    dst = MemoryDestination([mt.OCI_MANIFEST])
    first = next(iter(blobs))
    dst.blobs[first] = blobs[first]
    result = copy(src, dst, CopyOptions())
    assert dst.manifests == [(raw, mt.OCI_MANIFEST, None)] and dst.committed
    assert result.digest == Digest.from_bytes(raw)
    assert first not in src.fetched and dst.blobs == blobs


def test_corrupt_blob_is_refused_before_commit() -> None:
    raw, blobs = _image()
    layer = next(d for d in blobs if blobs[d][:2] == b"\x1f\x8b")
    blobs[layer] = blobs[layer][:-1] + bytes([blobs[layer][-1] ^ 1])
    dst = MemoryDestination([mt.OCI_MANIFEST])
    with pytest.raises(DigestMismatch, match=layer):
        copy(MemorySource(raw, mt.OCI_MANIFEST, blobs), dst, CopyOptions())
    assert not dst.committed and dst.manifests == []


def test_schema1_refused() -> None:
    with pytest.raises(UnsupportedMediaType, match="schema 1"):
        copy(MemorySource(b"{}", mt.DOCKER_SCHEMA1_SIGNED, {}), MemoryDestination([]))


def test_converts_when_destination_needs_docker() -> None:
    raw, blobs = _image()
    dst = MemoryDestination([mt.DOCKER_MANIFEST])
    copy(MemorySource(raw, mt.OCI_MANIFEST, blobs), dst)
    out, out_type, _ = dst.manifests[0]
    assert out_type == mt.DOCKER_MANIFEST
    assert json.loads(out)["layers"][0]["mediaType"] == mt.DOCKER_LAYER_GZIP


def test_recompress_to_zstd_keeps_the_tar() -> None:
    raw, blobs = _image()
    dst = MemoryDestination([mt.OCI_MANIFEST])
    copy(MemorySource(raw, mt.OCI_MANIFEST, blobs), dst, CopyOptions(compression="zstd"))
    doc = json.loads(dst.manifests[0][0])
    layer = doc["layers"][0]
    assert layer["mediaType"] == mt.OCI_LAYER_ZSTD
    data = dst.blobs[layer["digest"]]
    assert Digest.from_bytes(data) == layer["digest"] and len(data) == layer["size"]
    tar = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    config = json.loads(dst.blobs[doc["config"]["digest"]])
    assert Digest.from_bytes(tar) == config["rootfs"]["diff_ids"][0]


def _index() -> tuple[bytes, dict[str, bytes]]:
    blobs: dict[str, bytes] = {}
    entries = []
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        raw, b = _image(arch)
        blobs.update(b)
        d = Digest.from_bytes(raw)
        blobs[d] = raw
        platform = {"os": "linux", "architecture": arch}
        if variant:
            platform["variant"] = variant
        entries.append(
            {"mediaType": mt.OCI_MANIFEST, "digest": d, "size": len(raw), "platform": platform}
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries})
    return index.encode(), blobs


def test_index_platform_selection_into_local_store(tmp_path: Path) -> None:
    index, blobs = _index()
    store = ImageStore(tmp_path)
    dest = LocalDestination(
        store, names=["localhost/multi:1"], repo_digest_repos=["localhost/multi"]
    )
    try:
        result = copy(
            MemorySource(index, mt.OCI_INDEX, blobs), dest, CopyOptions(platform="linux/arm64")
        )
    finally:
        dest.close()
    rec = store.get("localhost/multi:1")
    assert rec.architecture == "arm64"
    assert result.digest == Digest.from_bytes(index)
    assert rec.index_digests == {"localhost/multi:1": Digest.from_bytes(index)}
    assert f"localhost/multi@{Digest.from_bytes(index)}" in rec.digests
    # GC keeps the index and the chosen image, drops nothing the name needs
    store.gc()
    assert store.content.has(Digest.from_bytes(index)) and store.check() == []


def test_index_unknown_platform_names_what_exists() -> None:
    index, blobs = _index()
    with pytest.raises(NotFound, match="linux/amd64"):
        copy(
            MemorySource(index, mt.OCI_INDEX, blobs),
            MemoryDestination([mt.OCI_MANIFEST]),
            CopyOptions(platform="linux/s390x"),
        )


def test_all_platforms_copies_every_child() -> None:
    index, blobs = _index()
    dst = MemoryDestination([mt.OCI_MANIFEST, mt.OCI_INDEX])
    copy(MemorySource(index, mt.OCI_INDEX, blobs), dst, CopyOptions(all_platforms=True))
    assert [m[2] is not None for m in dst.manifests] == [True, True, False]
    assert dst.manifests[-1][0] == index


def test_all_platforms_pull_keeps_siblings_out_of_listing_and_prune(tmp_path: Path) -> None:
    index, blobs = _index()
    store = ImageStore(tmp_path)
    dest = LocalDestination(
        store, names=["localhost/multi:1"], repo_digest_repos=["localhost/multi"]
    )
    try:
        copy(
            MemorySource(index, mt.OCI_INDEX, blobs),
            dest,
            CopyOptions(platform="linux/amd64", all_platforms=True),
        )
    finally:
        dest.close()
    assert len(store.images()) == 2
    assert store.prune() == []  # the arm64 sibling belongs to a named index
    assert len(store.images()) == 2
    store.untag("localhost/multi:1")
    assert len(store.prune()) == 2  # both are dangling once the name is gone

"""Image store: names, IDs, prefixes, removal rules and GC roots (real SQLite, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portside.errors import InUse, NotFound
from portside.images import store as store_mod
from portside.images.store import ImageRecord, ImageStore


def _image(store: ImageStore, tag: bytes) -> str:
    layer = store.content.put_bytes(b"layer-" + tag)
    config = store.content.put_bytes(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": "2024-01-01T00:00:00Z",
                "tag": tag.decode(),
            }
        ).encode()
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": 10,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 7}
        ],
    }
    m = store.content.put_bytes(json.dumps(manifest).encode())
    store.add_image(m, "application/vnd.oci.image.manifest.v1+json")
    return m


def test_names_ids_and_prefixes(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    m = _image(store, b"a")
    store.set_name("busybox", m)
    rec = store.get("busybox")
    assert rec.names == ["docker.io/library/busybox:latest"]
    assert rec.size == 17 and rec.architecture == "amd64"
    assert store.get(rec.id).manifest_digest == m
    assert store.get(rec.id[:5]).manifest_digest == m
    assert store.get(str(rec.config_digest)).manifest_digest == m
    assert store.get(m).manifest_digest == m
    store.tag("busybox", "localhost/mine:v1")
    assert store.get("mine:v1").manifest_digest == m
    with pytest.raises(NotFound):
        store.get("nothere")


def test_retag_moves_name(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    a, b = _image(store, b"a"), _image(store, b"b")
    store.set_name("x:1", a)
    store.set_name("x:1", b)
    assert store.get("x:1").manifest_digest == b
    assert store.get_by_digest(a).names == []


def test_remove_by_name_untags_then_deletes_and_gc_frees(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    m = _image(store, b"a")
    store.set_name("x:1", m)
    store.set_name("x:2", m)
    with pytest.raises(InUse):
        store.remove(store.get("x:1").id)
    assert store.remove("x:1") == (["docker.io/library/x:1"], [])
    untagged, deleted = store.remove("x:2")
    assert untagged == ["docker.io/library/x:2"] and len(deleted) == 1
    assert store.images() == []
    assert len(store.gc().removed) == 3
    assert list(store.content.blobs()) == []


def test_in_use_hook_refuses_unless_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_in_use_checks", [])
    store = ImageStore(tmp_path)
    m = _image(store, b"a")
    store.set_name("x:1", m)

    def used(rec: ImageRecord) -> str | None:
        return "container c1" if rec.manifest_digest == m else None

    store_mod.register_in_use_check(used)
    with pytest.raises(InUse, match="container c1"):
        store.remove("x:1")
    assert store.prune(all_images=True) == []
    store.remove("x:1", force=True)
    assert store.images() == []


def test_prune_dangling_and_all(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    a, b = _image(store, b"a"), _image(store, b"b")
    store.set_name("keep:1", a)
    assert [r.manifest_digest for r in store.prune()] == [b]
    assert [r.manifest_digest for r in store.prune(all_images=True)] == [a]


def test_check_reports_missing_blobs(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    m = _image(store, b"a")
    store.set_name("x:1", m)
    assert store.check() == []
    rec = store.get("x:1")
    store.content.delete(rec.config_digest)
    problems = store.check()
    assert len(problems) == 1 and str(rec.config_digest) in problems[0]
    store.check(repair=True)
    assert store.images() == []


def test_manifest_config_layers_accessors(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    m = _image(store, b"a")
    rec = store.get_by_digest(m)
    assert store.config(rec)["architecture"] == "amd64"
    [layer] = store.layers(rec)
    assert store.content.blob_path(layer["digest"]).read_bytes() == b"layer-a"
    assert store.manifest(rec)["config"]["digest"] == rec.config_digest

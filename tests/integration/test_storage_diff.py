"""A container's changes written as a layer and applied again give the same
tree as the container had; the layer is reproducible."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from portside.storage.diff import ChangeKind
from portside.storage.layers import LayerStore
from tests.conftest import need_tool
from tests.fixtures.hostile import Entry, diff_snapshots, snapshot
from tests.fixtures.registry import Registry
from tests.integration.test_storage_layers import _ignore_xattr, image_layers


def make_changes(root: Path) -> None:
    """Adds, modifications, deletions, an opaque dir, metadata-only changes."""
    (root / "etc" / "new.txt").write_text("added\n")
    (root / "data" / "keep.txt").write_text("modified\n")
    (root / "data" / "new-in-upper.txt").unlink()
    shutil.rmtree(root / "opaque")
    (root / "opaque").mkdir()
    (root / "opaque" / "again.txt").write_text("recreated dir\n")
    shutil.rmtree(root / "home" / "user")
    os.chmod(root / "etc" / "motd", 0o600)
    os.chown(root / "etc" / "passwd", 1000, 1000)
    os.symlink("/etc/motd", root / "newlink")
    (root / "new").mkdir()
    (root / "new" / "a").write_text("linked\n")
    os.link(root / "new" / "a", root / "new" / "b")
    os.mkfifo(root / "new" / "fifo")
    os.setxattr(root / "new" / "a", "user.portside.diff", b"yes")
    (root / "data" / "replaced.txt").unlink()
    (root / "data" / "replaced.txt").mkdir()
    (root / "data" / "replaced.txt" / "inside").write_text("file became dir\n")


@pytest.mark.root
@pytest.mark.parametrize(
    "driver", [pytest.param("overlay", marks=pytest.mark.overlay), pytest.param("vfs")]
)
def test_committed_changes_give_the_container_tree(
    tmp_path: Path, fixture_layouts: dict[str, Path], driver: str
) -> None:
    store = LayerStore(tmp_path / "state", driver)
    top = store.unpack_chain(image_layers(fixture_layouts["multilayer-gzip"]))[-1]
    store.prepare("c", top.chain_id)
    merged = store.mount("c")
    try:
        make_changes(merged)
        want = snapshot(merged, _ignore_xattr)
        changes = {(c.kind, c.path) for c in store.changes("c")}
        assert (ChangeKind.ADDED, "/etc/new.txt") in changes
        assert (ChangeKind.CHANGED, "/data/keep.txt") in changes
        assert (ChangeKind.DELETED, "/data/new-in-upper.txt") in changes
        assert (ChangeKind.DELETED, "/home/user") in changes
        result, layer = store.commit("c", tmp_path / "layer.tar.gz")
    finally:
        store.remove_snapshot("c")
    assert layer.parent == top.chain_id and layer.diff_id == result.diff_id
    store.view("v", layer.chain_id)
    try:
        got = snapshot(store.mount("v"), _ignore_xattr)
    finally:
        store.remove_snapshot("v")
    assert diff_snapshots(want, got) == []


@pytest.mark.root
@pytest.mark.overlay
def test_diff_is_reproducible_and_clean(
    tmp_path: Path, fixture_layouts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    store = LayerStore(tmp_path / "state", "overlay")
    top = store.unpack_chain(image_layers(fixture_layouts["multilayer-gzip"]))[-1]
    store.prepare("c", top.chain_id)
    try:
        make_changes(store.mount("c"))
        blobs = {}
        for comp in ("gzip", "zstd", "gzip"):
            out = io.BytesIO()
            result = store.diff("c", out, comp)
            if comp in blobs:
                assert blobs[comp][0] == out.getvalue()  # byte for byte
            blobs[comp] = (out.getvalue(), result)
        assert blobs["gzip"][1].diff_id == blobs["zstd"][1].diff_id
        plain = io.BytesIO()
        store.diff("c", plain, "none")
    finally:
        store.remove_snapshot("c")
    with tarfile.open(fileobj=io.BytesIO(plain.getvalue())) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]

    # sorted by path, a whiteout where the name it hides sorts, the opaque
    # marker right after its directory
    def key(name: str) -> list[str]:
        return [p.removeprefix(".wh.").replace(".wh..opq", "") for p in name.split("/")]

    assert names == sorted(names, key=key)
    assert "opaque/.wh..wh..opq" in names and "home/.wh.user" in names
    for m in members:
        assert m.mtime <= 1600000000
        assert m.uname == "" and m.gname == ""
        assert not {"atime", "ctime"} & set(m.pax_headers)
    a = next(m for m in members if m.name == "new/a")
    assert a.pax_headers["SCHILY.xattr.user.portside.diff"] == "yes"
    b = next(m for m in members if m.name == "new/b")
    assert b.islnk() and b.linkname == "new/a"


def _committed_layout(
    tmp_path: Path, fixture_layouts: dict[str, Path]
) -> tuple[dict[str, Entry], Path]:
    """The container's tree after make_changes, and an OCI layout (tag
    `committed`) of the image plus the container's diff layer."""
    from tests.fixtures.images import Layout, host_arch, read_json_blob, tagged_descriptor

    src = fixture_layouts["multilayer-gzip"]
    layers = image_layers(src)
    store = LayerStore(tmp_path / "state", "overlay")
    top = store.unpack_chain(layers)[-1]
    store.prepare("c", top.chain_id)
    try:
        make_changes(store.mount("c"))
        want = snapshot(store.mount("c"), _ignore_xattr)
        blob = io.BytesIO()
        result = store.diff("c", blob, "gzip")
    finally:
        store.remove_snapshot("c")
    copy = tmp_path / "layout"
    shutil.copytree(src, copy)
    layout = Layout(copy)
    manifest = read_json_blob(copy, tagged_descriptor(copy)["digest"])
    old = [(desc, diff) for desc, (diff, _) in zip(manifest["layers"], layers, strict=True)]
    new = (layout.blob(blob.getvalue(), result.media_type), result.diff_id)
    assert new[0]["digest"] == result.digest
    layout.tag(layout.image([*old, new], arch=host_arch()), "committed")
    return want, copy


@pytest.mark.root
@pytest.mark.overlay
@pytest.mark.interop
def test_umoci_reads_our_diff_layer_to_the_same_tree(
    tmp_path: Path, fixture_layouts: dict[str, Path]
) -> None:
    """Our whiteouts, opaque markers, hardlinks and xattrs as a peer reads them:
    the image plus the committed layer, unpacked by umoci, is the container."""
    need_tool("umoci")
    want, layout = _committed_layout(tmp_path, fixture_layouts)
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:committed", str(bundle)],
        check=True,
        capture_output=True,
    )
    assert diff_snapshots(want, snapshot(bundle / "rootfs", _ignore_xattr)) == []


@pytest.mark.root
@pytest.mark.overlay
@pytest.mark.interop
def test_committed_image_pushed_and_pulled_into_a_fresh_store_gives_the_tree(
    tmp_path: Path, fixture_layouts: dict[str, Path], registry: Registry
) -> None:
    """Through a real registry (skopeo both ways, until portside's own push and
    pull are wired to the store) into a fresh vfs store."""
    from tests.fixtures.images import push_with_skopeo

    need_tool("skopeo")
    want, layout = _committed_layout(tmp_path, fixture_layouts)
    ref = f"{registry.host}/portside-test/storage-commit:committed"
    push_with_skopeo(layout, ref, tag="committed")
    pulled = tmp_path / "pulled"
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{pulled}:x"],
        check=True,
        capture_output=True,
    )
    fresh = LayerStore(tmp_path / "fresh", "vfs")
    from tests.fixtures.images import read_json_blob, tagged_descriptor

    manifest = read_json_blob(pulled, tagged_descriptor(pulled, "x")["digest"])
    config = read_json_blob(pulled, manifest["config"]["digest"])
    blobs = [pulled / "blobs" / "sha256" / d["digest"].split(":")[1] for d in manifest["layers"]]
    top = fresh.unpack_chain(list(zip(config["rootfs"]["diff_ids"], blobs, strict=True)))[-1]
    fresh.prepare("again", top.chain_id)
    try:
        got = snapshot(fresh.mount("again"), _ignore_xattr)
    finally:
        fresh.remove_snapshot("again")
    assert diff_snapshots(want, got) == []

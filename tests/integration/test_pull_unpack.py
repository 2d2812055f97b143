"""`portside pull` unpacks the layers into the engine's layer store as they arrive.

Real registry, real `portside` command, real overlay layer store; the corrupted
download goes through the same faulty proxy the registry-fault tests use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.content import ContentStore
from portside.storage.layers import LayerStore, chain_of
from tests.fixtures.images import Layout, busybox_entries, host_arch, push_with_skopeo
from tests.fixtures.registry import Registry
from tests.integration.test_registry_faults import FaultProxy

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]

PORTSIDE = [sys.executable, "-m", "portside.cli"]


def portside(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*PORTSIDE, *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"portside {' '.join(args)} failed: {r.stderr}")
    return r


def _root() -> Path:
    return Path(os.environ["PORTSIDE_ROOT"])


def _layers() -> LayerStore:
    return LayerStore(_root(), recover=False)


def _blob(layout: Path, digest: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
    )
    return data


def _manifest(layout: Path) -> dict[str, object]:
    index = json.loads((layout / "index.json").read_text())
    return _blob(layout, index["manifests"][0]["digest"])


def _chains(layout: Path) -> list[str]:
    """Chain IDs of every layer of the layout's image, bottom first."""
    config = _blob(layout, _manifest(layout)["config"]["digest"])  # type: ignore[index]
    diff_ids: list[str] = config["rootfs"]["diff_ids"]  # type: ignore[index]
    return [str(chain_of(diff_ids[: i + 1])) for i in range(len(diff_ids))]


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    p = FaultProxy(registry.host)
    try:
        yield p
    finally:
        p.close()


def test_pull_unpacks_every_layer(
    pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    chains = _chains(fixture_layouts["multilayer-gzip"])
    assert len(chains) > 1
    portside("pull", "-q", pushed_images["multilayer-gzip"])
    store = _layers()
    try:
        for chain in chains:
            layer = store.get(chain)
            assert layer is not None, f"layer {chain} not unpacked"
            assert layer.path.is_dir()
        assert list((store.home / "tmp").iterdir()) == []
        # no directory without its record (a half-made layer)
        dirs = {p.name for p in (store.home / "layers").iterdir()}
        assert dirs == {x.chain_id.hex for x in store.layers()}
    finally:
        store.close()


def test_no_unpack_leaves_the_layer_store_empty(
    pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    portside("pull", "-q", "--no-unpack", pushed_images["multilayer-gzip"])
    assert portside("images", "-q").stdout.strip() != ""
    store = _layers()
    try:
        assert store.layers() == []
    finally:
        store.close()


def test_run_after_pull_unpacks_nothing_again(
    pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    portside("pull", "-q", pushed_images["busybox"])
    store = _layers()
    try:
        before = {str(x.chain_id): x.path.stat().st_ino for x in store.layers()}
        assert set(_chains(fixture_layouts["busybox"])) <= set(before)
        r = portside("run", "--rm", "--runtime", "runc", pushed_images["busybox"], "echo", "hi")
        assert r.stdout == "hi\n"
        after = {str(x.chain_id): x.path.stat().st_ino for x in store.layers()}
        assert after == before  # the same layers, the same directories: none made again
    finally:
        store.close()


def test_corrupt_blob_leaves_neither_blob_nor_layer(
    proxy: FaultProxy, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    layout = fixture_layouts["multilayer-gzip"]
    layer = _manifest(layout)["layers"][1]["digest"]  # type: ignore[index]
    proxy.flip_blob = layer
    ref = pushed_images["multilayer-gzip"].split("/", 1)[1]
    r = portside("pull", f"{proxy.host}/{ref}", check=False)
    assert r.returncode == 125
    assert layer in r.stderr and "mismatch" in r.stderr
    assert list(ContentStore(_root() / "content").blobs()) == []
    store = _layers()
    try:
        assert store.layers() == []  # not the bad one, nor the good ones unpacked meanwhile
        assert list((store.home / "tmp").iterdir()) == []
    finally:
        store.close()
    # a clean pull afterwards unpacks everything
    proxy.flip_blob = None
    portside("pull", "-q", f"{proxy.host}/{ref}")
    store = _layers()
    try:
        assert all(store.get(c) is not None for c in _chains(layout))
    finally:
        store.close()


def test_unpack_failure_leaves_no_partial_layer(registry: Registry, tmp_path: Path) -> None:
    """An image whose config names the wrong diffID: the blob verifies, the unpack
    runs to the end and then fails its check, and nothing of it stays."""
    layout = Layout(tmp_path / "bad")
    desc, _ = layout.layer(busybox_entries(), "gzip")
    wrong = "sha256:" + "0" * 64
    layout.tag(layout.image([(desc, wrong)], arch=host_arch()), "latest")
    ref = f"{registry.host}/portside-test/bad-diffid:latest"
    push_with_skopeo(layout.root, ref)
    r = portside("pull", "-q", ref, check=False)
    assert r.returncode != 0
    assert wrong in r.stderr
    store = _layers()
    try:
        assert store.layers() == []
        assert list((store.home / "tmp").iterdir()) == []
        assert list((store.home / "layers").iterdir()) == []
    finally:
        store.close()

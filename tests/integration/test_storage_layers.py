"""The layer store and its drivers on the real kernel, held against umoci.

The multilayer fixture image (whiteouts, opaque dirs, hardlinks across layers,
symlinks, a device node, a fifo, xattrs, setuid files, non-root owners) is
unpacked by portside and by `umoci unpack`; the trees must match entry by entry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from portside.errors import DigestMismatch, InUse
from portside.storage.layers import LayerStore
from portside.storage.mounts import _mountinfo
from tests.conftest import need_tool
from tests.fixtures.hostile import Entry, _tar, diff_snapshots, f, snapshot
from tests.fixtures.images import check_tree, read_json_blob, tagged_descriptor

COMPRESSIONS = ["gzip", "zstd", "none"]


def image_layers(layout: Path) -> list[tuple[str, Path]]:
    """(diffID, blob path) of each layer of the layout's `latest` image, bottom first."""
    manifest = read_json_blob(layout, tagged_descriptor(layout)["digest"])
    config = read_json_blob(layout, manifest["config"]["digest"])
    blobs = [layout / "blobs" / "sha256" / d["digest"].split(":")[1] for d in manifest["layers"]]
    return list(zip(config["rootfs"]["diff_ids"], blobs, strict=True))


def _ignore_xattr(name: str) -> bool:
    return name.startswith("trusted.overlay.") or name == "user.rootlesscontainers"


_UMOCI: dict[str, dict[str, Entry]] = {}


def umoci_tree(layouts: dict[str, Path], compression: str, work: Path) -> dict[str, Entry]:
    """`umoci unpack` of the multilayer image, as a snapshot. Debian's umoci
    cannot read zstd layers, so the reference is the gzip layout, whose layers
    are the same tars (asserted: same diffIDs)."""
    layout = layouts["multilayer-gzip"]
    ours = [d for d, _ in image_layers(layouts[f"multilayer-{compression}"])]
    assert ours == [d for d, _ in image_layers(layout)]
    key = str(layout)
    if key not in _UMOCI:
        need_tool("umoci")
        bundle = work / "umoci-bundle"
        subprocess.run(
            ["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)],
            check=True,
            capture_output=True,
        )
        _UMOCI[key] = snapshot(bundle / "rootfs", _ignore_xattr)
        subprocess.run(["rm", "-rf", str(bundle)], check=True)
    return _UMOCI[key]


def _mounts_under(path: Path) -> list[str]:
    base = str(path.resolve())
    return [m for m in _mountinfo() if m == base or m.startswith(base + "/")]


@pytest.mark.root
@pytest.mark.overlay
@pytest.mark.interop
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_overlay_mount_of_multilayer_image_equals_umoci_unpack(
    tmp_path: Path, fixture_layouts: dict[str, Path], compression: str
) -> None:
    layout = fixture_layouts[f"multilayer-{compression}"]
    store = LayerStore(tmp_path / "state", "overlay")
    layers = store.unpack_chain(image_layers(layout))
    top = layers[-1].chain_id
    for key, readonly in (("view", True), ("container", False)):
        if readonly:
            store.view(key, top)
        else:
            store.prepare(key, top)
        merged = store.mount(key)
        try:
            got = snapshot(merged, _ignore_xattr)
            assert diff_snapshots(umoci_tree(fixture_layouts, compression, tmp_path), got) == []
            assert check_tree(merged, cross_layer_hardlinks_share_inode=False) == []
        finally:
            store.remove_snapshot(key)
    assert _mounts_under(store.home) == []
    assert list((store.home / "snapshots").iterdir()) == []


@pytest.mark.root
@pytest.mark.interop
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_vfs_tree_of_multilayer_image_equals_umoci_unpack(
    tmp_path: Path, fixture_layouts: dict[str, Path], compression: str
) -> None:
    layout = fixture_layouts[f"multilayer-{compression}"]
    store = LayerStore(tmp_path / "state", "vfs")
    layers = store.unpack_chain(image_layers(layout))
    want = umoci_tree(fixture_layouts, compression, tmp_path)
    assert diff_snapshots(want, snapshot(layers[-1].path, _ignore_xattr)) == []
    store.prepare("c1", layers[-1].chain_id)
    merged = store.mount("c1")
    try:
        assert diff_snapshots(want, snapshot(merged, _ignore_xattr)) == []
        assert check_tree(merged) == []
    finally:
        store.remove_snapshot("c1")
    assert _mounts_under(store.home) == []


@pytest.mark.root
def test_each_layer_unpacks_once_under_concurrent_callers(
    tmp_path: Path, fixture_layouts: dict[str, Path]
) -> None:
    store = LayerStore(tmp_path / "state", "vfs")
    diff_id, blob = image_layers(fixture_layouts["busybox"])[0]
    results = []
    calls = []

    def unpack() -> None:
        results.append(store.unpack(diff_id, blob))

    from portside.storage import layers as layers_mod

    real_create = layers_mod.LayerStore._create

    def counting_create(self: LayerStore, *a: object, **kw: object) -> object:
        calls.append(1)
        return real_create(self, *a, **kw)  # type: ignore[arg-type]

    layers_mod.LayerStore._create = counting_create  # type: ignore[assignment,method-assign]
    try:
        threads = [threading.Thread(target=unpack) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        layers_mod.LayerStore._create = real_create  # type: ignore[method-assign]
    assert len(calls) == 1
    assert len({r.chain_id for r in results}) == 1 and len(results) == 4
    assert [p.name for p in (store.home / "layers").iterdir()] == [results[0].chain_id.hex]


def test_wrong_diff_id_fails_and_leaves_nothing(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "state", "vfs")
    import io

    blob = _tar([f("a.txt", b"a\n")])
    with pytest.raises(DigestMismatch):
        store.unpack("sha256:" + "0" * 64, io.BytesIO(blob))
    assert list((store.home / "layers").iterdir()) == []
    assert list((store.home / "tmp").iterdir()) == []
    layer = store.unpack(None, io.BytesIO(blob))  # a commit: whatever it hashes to
    assert (layer.path / "a.txt").read_bytes() == b"a\n"


def test_references_keep_layers_and_prune_frees_them(tmp_path: Path) -> None:
    import io

    store = LayerStore(tmp_path / "state", "vfs")
    base = store.unpack(None, io.BytesIO(_tar([f("base", b"1\n")])))
    top = store.unpack(None, io.BytesIO(_tar([f("top", b"2\n")])), parent=base.chain_id)
    store.acquire(top.chain_id)
    with pytest.raises(InUse, match="layer"):
        store.remove_layer(base.chain_id)
    assert store.prune() == []
    store.prepare("c", top.chain_id)
    store.release(top.chain_id)
    assert store.prune() == []  # the snapshot still holds top
    store.remove_snapshot("c")
    assert set(store.prune()) == {top.chain_id, base.chain_id}
    assert list((store.home / "layers").iterdir()) == []


@pytest.mark.root
@pytest.mark.overlay
def test_twenty_containers_share_the_image_layers(
    tmp_path: Path, fixture_layouts: dict[str, Path]
) -> None:
    store = LayerStore(tmp_path / "state", "overlay")
    layers = store.unpack_chain(image_layers(fixture_layouts["multilayer-gzip"]))
    top = layers[-1].chain_id
    before = _du(store.home)
    image_size = sum(_du(layer.path) for layer in layers)
    try:
        for i in range(20):
            store.prepare(f"c{i}", top)
            merged = store.mount(f"c{i}")
            (merged / "etc" / "hostname").write_text(f"c{i}\n")
            assert (merged / "bin" / "busybox").stat().st_size > 0
        grown = _du(store.home) - before
        uppers = sum(_du(store.upper_dir(f"c{i}")) for i in range(20))
        df = store.df()
        assert (df.layers, df.snapshots) == (len(layers), 20)
        # shared layers counted once (plus layers/ and one layers/<hex>/ dir each)
        assert df.layer_bytes <= image_size + (len(layers) + 1) * 4096
        # the growth is the upper dirs (plus the empty work/merged dirs), not copies
        assert grown < uppers + 20 * 3 * 8192
        assert grown < image_size
    finally:
        for i in range(20):
            store.remove_snapshot(f"c{i}")
    assert _mounts_under(store.home) == []


def _du(path: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "-x", "-B1", "--exclude=storage.db*", str(path)],
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[0])


@pytest.mark.root
@pytest.mark.overlay
def test_deep_image_lowerdirs_fit_the_mount_page(tmp_path: Path) -> None:
    """120 layers under a long root path: the absolute lowerdir list is longer
    than a page, so the mount is made with short relative names."""
    import io

    deep = tmp_path / ("long-path-component-" * 6) / "state"
    store = LayerStore(deep, "overlay")
    parent: str | None = None
    for i in range(120):
        layer = store.unpack(None, io.BytesIO(_tar([f(f"f{i}", f"{i}\n".encode())])), parent=parent)
        parent = layer.chain_id
    mounts = store.prepare("deep", parent)
    assert len(",".join(mounts[0].options)) > os.sysconf("SC_PAGE_SIZE")
    merged = store.mount("deep")
    try:
        assert sorted(os.listdir(merged)) == sorted(f"f{i}" for i in range(120))
    finally:
        store.remove_snapshot("deep")


_KILL_SCRIPT = """
import sys, io, tarfile
from portside.storage.layers import LayerStore
store = LayerStore(sys.argv[1], sys.argv[2])
class Slow(io.RawIOBase):
    def __init__(self, data):
        self.data = io.BytesIO(data)
        self.n = 0
    def readable(self):
        return True
    def readinto(self, b):
        self.n += 1
        if self.n == 3:
            print("unpacking", flush=True)
            import time
            time.sleep(600)
        return self.data.readinto(b[:4096])
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tf:
    for i in range(64):
        ti = tarfile.TarInfo(f"d/f{i}")
        ti.size = 1000
        tf.addfile(ti, io.BytesIO(bytes(1000)))
store.unpack(None, Slow(buf.getvalue()))
"""


@pytest.mark.root
@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_kill_9_mid_unpack_leaves_nothing_after_next_open(tmp_path: Path, driver: str) -> None:
    state = tmp_path / "state"
    LayerStore(state, driver)  # create the store (and probe) first
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(state), driver],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "unpacking"
        home = state / "storage" / driver
        assert list((home / "tmp").iterdir()) != []  # caught mid-unpack
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = LayerStore(state, driver)
    assert list((store.home / "tmp").iterdir()) == []
    assert list((store.home / "layers").iterdir()) == []
    assert store.layers() == []
    assert [p.name for p in (store.home / "locks").iterdir() if p.name.startswith("tmp-")] == []


def test_unpack_while_downloading_through_a_writer(
    tmp_path: Path, fixture_layouts: dict[str, Path]
) -> None:
    store = LayerStore(tmp_path / "state", "vfs")
    diff_id, blob = image_layers(fixture_layouts["busybox"])[0]
    data = blob.read_bytes()
    with store.writer(diff_id) as w:
        for i in range(0, len(data), 65536):  # as chunks arrive from the registry
            w.write(data[i : i + 65536])
        layer = w.close()
    assert layer.diff_id == diff_id and (layer.path / "bin" / "busybox").is_file()
    # a download that breaks off leaves nothing behind
    other = store.writer("sha256:" + "1" * 64)
    other.write(data[: len(data) // 2])
    other.abort()
    assert [p.name for p in (store.home / "layers").iterdir()] == [layer.chain_id.hex]
    assert list((store.home / "tmp").iterdir()) == []


@pytest.mark.root
@pytest.mark.overlay
def test_overlay_is_chosen_where_it_works(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "state")
    assert store.driver_name == "overlay"
    assert list((tmp_path / "state" / "storage").glob("probe-*")) == []  # probe cleaned up


@pytest.mark.root
def test_mount_all_undoes_what_it_did_when_one_mount_fails(tmp_path: Path) -> None:
    from portside.errors import StorageError
    from portside.storage.mounts import Mount, mount_all

    src = tmp_path / "src"
    target = tmp_path / "target"
    src.mkdir()
    target.mkdir()
    mounts = [
        Mount("bind", str(src), "", ("rbind", "ro")),
        Mount("bind", str(tmp_path / "missing"), "", ("rbind",)),
    ]
    with pytest.raises(StorageError, match="missing"):
        mount_all(mounts, target)
    assert _mounts_under(target) == []


@pytest.mark.root
@pytest.mark.overlay
def test_image_mount_is_shared_and_unmounts_cleanly(
    tmp_path: Path, fixture_layouts: dict[str, Path]
) -> None:
    store = LayerStore(tmp_path / "state", "overlay")
    top = store.unpack_chain(image_layers(fixture_layouts["busybox"]))[-1].chain_id
    path = store.mount_image(top)
    assert store.mount_image(top) == path
    assert (path / "bin" / "busybox").is_file()
    with pytest.raises(OSError):
        (path / "new-file").write_text("read-only")
    with pytest.raises(InUse):
        store.remove_layer(top)
    store.unmount_image(top)
    assert _mounts_under(store.home) == []
    store.remove_layer(top)
    assert list((store.home / "layers").iterdir()) == []
    assert list((store.home / "l").iterdir()) == []


_DISCARD_SCRIPT = """
import os, sys
from portside.storage.layers import LayerStore
LayerStore(sys.argv[1], "vfs", recover=False).discard(sys.argv[2])
os._exit(0)  # as a kill -9 after the rename: the deletion never ran
"""


def test_discard_hides_a_tree_at_once_and_deletes_it_later(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = LayerStore(state, "vfs")
    tree = state / "gone"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("x")
    store.discard(tree)
    assert not tree.exists()  # out of sight before the deletion
    (aside,) = (store.home / "tmp").iterdir()
    LayerStore(state, "vfs")  # another process's start-up leaves what is held alone
    assert aside.exists()
    store.empty_trash()
    assert list((store.home / "tmp").iterdir()) == []
    assert [p.name for p in (store.home / "locks").iterdir() if p.name.startswith("tmp-")] == []
    # a process that ends between the rename and the deletion: the next open removes it
    tree.mkdir()
    subprocess.run([sys.executable, "-c", _DISCARD_SCRIPT, str(state), str(tree)], check=True)
    assert not tree.exists() and len(list((store.home / "tmp").iterdir())) == 1
    LayerStore(state, "vfs")
    assert list((store.home / "tmp").iterdir()) == []
    store.discard(state / "never-was")  # nothing there: nothing to do
    assert list((store.home / "tmp").iterdir()) == []
    store.close()


def test_recovery_leaves_a_live_processes_overlay_probe_alone(tmp_path: Path) -> None:
    """Opening a store recovers what crashed processes left, but a `probe-PID` directory
    of a process still probing is not a leftover: taken away mid-probe, that process
    would find overlay "broken" and cache vfs for the root."""
    store = LayerStore(tmp_path / "state", "vfs")
    alive = subprocess.Popen(["sleep", "60"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        live_dir = store.storage_root / f"probe-{alive.pid}"
        dead_dir = store.storage_root / f"probe-{gone.pid}"
        for d in (live_dir, dead_dir):
            (d / "m").mkdir(parents=True)
        store.recover()
        assert live_dir.is_dir()
        assert not dead_dir.exists()
    finally:
        alive.kill()
        alive.wait()

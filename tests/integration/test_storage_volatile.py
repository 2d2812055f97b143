"""Volatile overlay mounts (what `run --rm` uses): the option reaches the kernel, the
snapshot mounts again after it (the kernel's marker is cleared), and removal is clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from portside.storage.layers import LayerStore
from tests.integration.test_storage_layers import _mounts_under, image_layers


def _options_at(target: Path) -> list[str]:
    """The superblock options of the mount at `target` (mountinfo's last field)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(target):
            return fields[-1].split(",")
    return []


def _is_volatile(target: Path) -> bool:
    opts = _options_at(target)  # newer kernels show the option as fsync=volatile
    return "volatile" in opts or "fsync=volatile" in opts


@pytest.mark.root
@pytest.mark.overlay
def test_volatile_mount_then_normal_remount_and_clean_removal(
    tmp_path: Path, fixture_layouts: dict[str, Path]
) -> None:
    store = LayerStore(tmp_path / "state", "overlay")
    top = store.unpack_chain(image_layers(fixture_layouts["busybox"]))[-1].chain_id
    store.prepare("c", top)
    try:
        merged = store.mount("c", volatile=True)
        assert _is_volatile(merged)
        (merged / "written").write_text("kept")
        store.unmount("c")
        # the kernel leaves work/work/incompat/volatile behind; a remount must still work
        merged = store.mount("c")
        assert not _is_volatile(merged)
        assert (merged / "written").read_text() == "kept"
        store.unmount("c")
        merged = store.mount("c", volatile=True)
        assert _is_volatile(merged)
    finally:
        store.remove_snapshot("c")
    assert _mounts_under(store.home) == []
    assert list((store.home / "snapshots").iterdir()) == []

"""The build workspace: a step's overlay upper dir adopted as its layer must hold what
unpacking the step's blob gives (files, modes, owners, whiteouts), and leave no
snapshot or mount behind."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import pytest

from portside.build.workspace import View, Workspace
from portside.content.store import ContentStore
from portside.storage.layers import LayerStore

pytestmark = [pytest.mark.root, pytest.mark.overlay]


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            data = Path(full).read_bytes() if stat.S_ISREG(st.st_mode) else None
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
            rdev = st.st_rdev if stat.S_ISCHR(st.st_mode) else None
            opaque = None
            if stat.S_ISDIR(st.st_mode):
                with contextlib.suppress(OSError):
                    opaque = os.getxattr(full, "trusted.overlay.opaque")
            rel = os.path.relpath(full, root)
            out[rel] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                data,
                link,
                rdev,
                opaque,
            )
    return out


def test_adopted_layers_equal_their_unpacked_blobs(tmp_path: Path) -> None:
    layers = LayerStore(tmp_path / "root", "overlay")
    content = ContentStore(tmp_path / "root" / "content")
    with Workspace(layers, None) as ws:
        (ws.rootfs / "d").mkdir(mode=0o750)
        (ws.rootfs / "d" / "f").write_text("f\n")
        os.chown(ws.rootfs / "d" / "f", 1000, 1000)
        (ws.rootfs / "gone").write_text("to be removed\n")
        (ws.rootfs / "opaque").mkdir()
        (ws.rootfs / "opaque" / "old").write_text("old\n")
        os.symlink("d/f", ws.rootfs / "link")
        first = ws.commit(content)
    with Workspace(layers, first.chain_id) as ws:
        os.unlink(ws.rootfs / "gone")
        import shutil

        shutil.rmtree(ws.rootfs / "opaque")
        (ws.rootfs / "opaque").mkdir()
        (ws.rootfs / "opaque" / "new").write_text("new\n")
        (ws.rootfs / "d" / "f").write_text("changed\n")
        second = ws.commit(content)
    assert layers.snapshots() == []
    # the same blobs unpacked into a store of their own give the same layer dirs
    other = LayerStore(tmp_path / "other", "overlay")
    parent = None
    for nl in (first, second):
        blob = content.blob_path(str(nl.descriptor["digest"]))
        unpacked = other.unpack(nl.diff_id, blob, parent=parent)
        assert str(unpacked.chain_id) == nl.chain_id
        adopted = layers.layer(nl.chain_id)
        assert _tree(adopted.path) == _tree(unpacked.path)
        assert (adopted.size, adopted.entries) == (unpacked.size, unpacked.entries)
        assert adopted.unpacked_size == unpacked.unpacked_size
        parent = nl.chain_id
    view = View(layers, second.chain_id)
    try:
        merged = _tree(view.rootfs)
    finally:
        view.close()
    assert "gone" not in merged and "opaque/old" not in merged
    assert merged["opaque/new"][3] == b"new\n" and merged["d/f"][3] == b"changed\n"
    assert layers.snapshots() == []
    layers.close()
    other.close()

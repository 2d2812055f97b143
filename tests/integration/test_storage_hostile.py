"""The hostile layer corpus: every case fails naming its entry, and nothing
outside the layer root is created, changed or left behind."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from portside.errors import UnsafeLayer
from portside.storage.apply import (
    ApplyOptions,
    DevicePolicy,
    WhiteoutMode,
    apply_layer,
    unpack_layer,
)
from tests.fixtures.hostile import (
    CANARY,
    build_corpus,
    prepare_outside,
    snapshot,
)

_CORPUS_NAMES = [c.name for c in build_corpus(Path("/nonexistent/outside"))]


def _options(overrides: dict[str, object], mode: WhiteoutMode) -> ApplyOptions:
    opts = ApplyOptions(whiteouts=mode, threads=2)
    for key, value in overrides.items():
        if key == "devices":
            value = DevicePolicy(value)
        setattr(opts, key, value)
    return opts


@pytest.mark.parametrize("mode", [WhiteoutMode.OVERLAY, WhiteoutMode.APPLY], ids=lambda m: m.value)
@pytest.mark.parametrize("case_name", _CORPUS_NAMES)
def test_hostile_layer_fails_naming_entry_and_touches_nothing(
    tmp_path: Path, case_name: str, mode: WhiteoutMode
) -> None:
    sandbox = tmp_path / "sandbox"
    outside = sandbox / "outside"
    prepare_outside(outside)
    case = next(c for c in build_corpus(outside) if c.name == case_name)
    before = snapshot(sandbox)
    with pytest.raises(UnsafeLayer) as err:
        unpack_layer(io.BytesIO(case.tar), sandbox / "layer", _options(case.options, mode))
    assert case.entry in str(err.value), str(err.value)
    assert (outside / "canary.txt").read_bytes() == CANARY
    assert snapshot(sandbox) == before  # no layer dir, no temp dir, nothing outside
    assert not Path("/escape.txt").exists()


def test_vfs_lower_symlink_is_not_followed_by_the_next_layer(tmp_path: Path) -> None:
    """A lower layer's symlink to / is content; an upper layer writing through
    it must fail, not land on the host."""
    from tests.fixtures.hostile import _tar, f, sym

    sandbox = tmp_path / "sandbox"
    outside = sandbox / "outside"
    prepare_outside(outside)
    root = sandbox / "root"
    root.mkdir()
    opts = ApplyOptions(whiteouts=WhiteoutMode.APPLY, threads=2)
    apply_layer(io.BytesIO(_tar([sym("evil", str(outside))])), root, opts)
    before = snapshot(outside)
    with pytest.raises(UnsafeLayer, match=r"evil/canary\.txt"):
        apply_layer(io.BytesIO(_tar([f("evil/canary.txt", b"pwned\n")])), root, opts)
    with pytest.raises(UnsafeLayer, match=r"evil/\.wh\.canary\.txt"):
        apply_layer(io.BytesIO(_tar([f("evil/.wh.canary.txt", b"")])), root, opts)
    assert snapshot(outside) == before
    assert os.readlink(root / "evil") == str(outside)


def test_replacing_a_lower_symlink_replaces_the_link_not_its_target(tmp_path: Path) -> None:
    from tests.fixtures.hostile import _tar, f, sym

    outside = tmp_path / "outside"
    prepare_outside(outside)
    root = tmp_path / "rootfs"
    root.mkdir()
    opts = ApplyOptions(whiteouts=WhiteoutMode.APPLY, threads=2)
    apply_layer(io.BytesIO(_tar([sym("x", str(outside / "canary.txt"))])), root, opts)
    apply_layer(io.BytesIO(_tar([f("x", b"a file now\n")])), root, opts)
    assert (root / "x").read_bytes() == b"a file now\n"
    assert not (root / "x").is_symlink()
    assert (outside / "canary.txt").read_bytes() == CANARY


def test_overlay_layer_cannot_reach_through_a_lower_layers_symlink(tmp_path: Path) -> None:
    """Overlay layers are separate dirs, but implicit parents and hardlinks to
    lower files look into the lowers: never through a symlink found there."""
    from tests.fixtures.hostile import _tar, f, hard, sym

    outside = tmp_path / "outside"
    prepare_outside(outside)
    lower = tmp_path / "lower"
    unpack_layer(io.BytesIO(_tar([sym("evil", str(outside))])), lower)
    opts = ApplyOptions(lowers=[lower], threads=2)
    with pytest.raises(UnsafeLayer, match="'h'"):  # the canary is not copied in
        unpack_layer(io.BytesIO(_tar([hard("h", "evil/canary.txt")])), tmp_path / "u1", opts)
    assert not (tmp_path / "u1").exists()
    # an implicit "evil/" parent is a plain new dir in this layer, not the link
    unpack_layer(io.BytesIO(_tar([f("evil/inside.txt", b"mine\n")])), tmp_path / "u2", opts)
    assert (tmp_path / "u2" / "evil").is_dir() and not (tmp_path / "u2" / "evil").is_symlink()
    assert sorted(os.listdir(outside)) == ["canary.txt"]
    assert (outside / "canary.txt").read_bytes() == CANARY

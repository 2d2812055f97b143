"""`image mount`, `diff` and `commit` end to end: real overlay mounts, containers, registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.images import EXPECTED, check_tree
from tests.integration.test_engine_support import Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(240)]

MULTI = "localhost/ml:1"


def _load_layout(root: Path, layout: Path, name: str) -> None:
    from portside.images.copy import CopyOptions, copy
    from portside.images.store import ImageStore
    from portside.images.transports.local import LocalDestination
    from portside.images.transports.oci_layout import OciLayoutSource

    store = ImageStore(root)
    dest = LocalDestination(store, names=[name])
    try:
        copy(OciLayoutSource.from_dir(layout, "latest"), dest, CopyOptions())
    finally:
        dest.close()
        store.close()


def _mountinfo() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def test_image_mount_gives_the_unpacked_tree(env: Env, fixture_layouts: dict[str, Path]) -> None:
    _load_layout(env.root, fixture_layouts["multilayer-gzip"], MULTI)
    path = Path(env.cli("image", "mount", MULTI).stdout.strip())
    assert path.is_dir() and str(path).startswith(str(env.root))
    assert str(path) in _mountinfo()
    assert check_tree(path, EXPECTED, cross_layer_hardlinks_share_inode=False) == []
    # the same path for a second caller; read-only
    assert env.cli("image", "mount", MULTI).stdout.strip() == str(path)
    with pytest.raises(OSError):
        (path / "new-file").write_text("x")
    env.cli("image", "unmount", MULTI)
    assert env.mounts_under(env.root) == []
    bad = env.cli("image", "mount", "localhost/nosuch:1", check=False)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1

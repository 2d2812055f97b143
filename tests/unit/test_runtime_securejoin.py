"""secure_join: a path in the rootfs resolves as the container would see it, never outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portside.errors import RuntimeFailure
from portside.runtime.rootfs import secure_join


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "abs-out").symlink_to("/etc")  # absolute: means the container's /etc
    (r / "rel-out").symlink_to("../../../../../../../tmp")  # climbs: clamps at the root
    (r / "lib").symlink_to("usr/lib")
    (r / "loop").symlink_to("loop")
    (r / "chain").symlink_to("abs-out/../rel-out")
    return r


@pytest.mark.parametrize(
    ("unsafe", "inside"),
    [
        ("/etc/passwd", "etc/passwd"),
        ("/abs-out/x", "etc/x"),
        ("/rel-out/x", "tmp/x"),
        ("/../../etc", "etc"),
        ("lib/libc.so", "usr/lib/libc.so"),
        ("/chain/y", "tmp/y"),
        ("/missing/deeper/../z", "missing/z"),
        ("/", ""),
    ],
)
def test_resolves_inside_the_root(root: Path, unsafe: str, inside: str) -> None:
    got = secure_join(str(root), unsafe)
    assert got == str(root / inside).rstrip("/") if inside else got == str(root)
    assert os.path.commonpath([got, str(root)]) == str(root)


def test_symlink_loop_is_an_error(root: Path) -> None:
    with pytest.raises(RuntimeFailure, match="too many levels"):
        secure_join(str(root), "/loop/x")

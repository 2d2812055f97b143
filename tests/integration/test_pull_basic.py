"""Pull from the real docker-registry into the local store (library level)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portside.config import RegistriesConf
from portside.images.copy import CopyOptions
from portside.images.pull import pull_image
from portside.images.store import ImageStore
from portside.registry.resolver import Resolver


@pytest.mark.parametrize(
    "name", ["busybox", "multilayer-gzip", "multilayer-zstd", "multilayer-none", "multiplatform"]
)
def test_pull_keeps_registry_digests(
    name: str, pushed_images: dict[str, str], fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    store = ImageStore(tmp_path / "root")
    resolver = Resolver(RegistriesConf())
    image, result = pull_image(store, pushed_images[name], resolver, CopyOptions())
    index = json.loads((fixture_layouts[name] / "index.json").read_text())
    want = index["manifests"][0]["digest"]
    assert result.digest == want
    assert image.names == [pushed_images[name].replace(":latest", ":latest")]
    assert store.content.verify_all() == []
    assert store.get(pushed_images[name]).manifest_digest == image.manifest_digest


@pytest.mark.timeout(60)
def test_tty_shows_live_progress_then_summary(pushed_images: dict[str, str]) -> None:
    import re
    import sys

    import pexpect

    child = pexpect.spawn(
        sys.executable,
        ["-m", "portside.cli", "pull", pushed_images["multilayer-gzip"]],
        timeout=60,
        dimensions=(40, 120),
    )
    child.expect(pexpect.EOF)
    child.close()
    out = child.before.decode(errors="replace")
    assert child.exitstatus == 0, out
    assert re.search(r"layer [0-9a-f]{12}", out)  # one bar per layer
    assert re.search(r"Copied [0-9.]+[kM]?B in [0-9.]+s", out)  # the summary
    assert re.search(r"^[0-9a-f]{64}\r?$", out, re.M)  # then the image ID


def test_ensure_image_policies(pushed_images: dict[str, str], tmp_path: Path) -> None:
    from portside.errors import NotFound
    from portside.images.pull import ensure_image

    store = ImageStore(tmp_path / "root")
    ref = pushed_images["busybox"]
    with pytest.raises(NotFound):
        ensure_image(store, ref, "never")
    first = ensure_image(store, ref)  # missing: pulls
    assert ensure_image(store, ref, "never").manifest_digest == first.manifest_digest
    assert ensure_image(store, ref, "always").manifest_digest == first.manifest_digest

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

"""The registry fixture serves the fixture images exactly as built, and peers read them right."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_root, need_tool
from tests.fixtures import images
from tests.fixtures.registry import Registry

pytestmark = pytest.mark.interop

ACCEPT = ", ".join(
    [
        images.MEDIA_MANIFEST,
        images.MEDIA_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def split_ref(ref: str) -> tuple[str, str, str]:
    host, rest = ref.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    return host, repo, tag


def http_get(url: str, accept: str | None = None) -> tuple[bytes, Any]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read(), response.headers


def skopeo(*args: str) -> str:
    need_tool("skopeo")
    result = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_registry_serves_manifest_and_blobs_over_plain_http(
    registry: Registry, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    for name, ref in pushed_images.items():
        layout = fixture_layouts[name]
        desc = images.tagged_descriptor(layout)
        host, repo, tag = split_ref(ref)
        assert host == registry.host
        body, headers = http_get(f"{registry.url}/v2/{repo}/manifests/{tag}", ACCEPT)
        assert body == images.read_blob(layout, desc["digest"]), name
        assert headers["Docker-Content-Digest"] == desc["digest"]
        assert headers["Content-Type"] == desc["mediaType"]
        if desc["mediaType"] == images.MEDIA_INDEX:
            children = [m["digest"] for m in json.loads(body)["manifests"]]
            for child in children:
                child_body, _ = http_get(f"{registry.url}/v2/{repo}/manifests/{child}", ACCEPT)
                assert "sha256:" + hashlib.sha256(child_body).hexdigest() == child
            manifest = images.read_json_blob(layout, children[0])
        else:
            manifest = json.loads(body)
        for blob in [manifest["config"], *manifest["layers"]]:
            data, _ = http_get(f"{registry.url}/v2/{repo}/blobs/{blob['digest']}")
            assert len(data) == blob["size"]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"]


def test_skopeo_keeps_digests_and_media_types(
    pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    """zstd and uncompressed layers arrive as they were built: no recompression."""
    for name, ref in pushed_images.items():
        layout = fixture_layouts[name]
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
        desc = images.tagged_descriptor(layout)
        assert raw.encode() == images.read_blob(layout, desc["digest"]), name
        if name.startswith("multilayer-"):
            media = images.MEDIA_LAYER[name.removeprefix("multilayer-")]
            assert {layer["mediaType"] for layer in json.loads(raw)["layers"]} == {media}


def test_skopeo_inspect_reads_configs(
    pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    for name in ("busybox", "multilayer-gzip", "multilayer-zstd", "multilayer-none"):
        info = json.loads(
            skopeo("inspect", "--tls-verify=false", f"docker://{pushed_images[name]}")
        )
        manifest = images.read_json_blob(
            fixture_layouts[name], images.tagged_descriptor(fixture_layouts[name])["digest"]
        )
        assert info["Architecture"] == images.host_arch() and info["Os"] == "linux"
        assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]
        assert images.PATH_ENV in info["Env"]
    ref = f"docker://{pushed_images['multiplatform']}"
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        extra = ["--override-arch", arch, "--override-os", "linux"]
        if variant:
            extra += ["--override-variant", variant]
        info = json.loads(skopeo(*extra, "inspect", "--tls-verify=false", ref))
        assert info["Architecture"] == arch
        # skopeo 1.9's summary has no Variant field: read it from the config itself
        config = json.loads(skopeo(*extra, "inspect", "--config", "--tls-verify=false", ref))
        assert (config["architecture"], config.get("variant")) == (arch, variant)


def umoci_unpack(layout: Path, bundle: Path) -> Path:
    need_root()
    need_tool("umoci")
    result = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return bundle / "rootfs"


@pytest.mark.root
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_umoci_unpack_matches_expected_tree(
    tmp_path: Path, fixture_layouts: dict[str, Path], compression: str
) -> None:
    """umoci 0.4.7 cannot read zstd layers; the zstd layout carries the same tars (see
    test_compressions_carry_the_same_tars), so checking gzip and none covers it."""
    rootfs = umoci_unpack(fixture_layouts[f"multilayer-{compression}"], tmp_path / "bundle")
    assert images.check_tree(rootfs) == []


@pytest.mark.root
def test_umoci_unpack_of_busybox_runs_in_a_chroot(
    tmp_path: Path, fixture_layouts: dict[str, Path]
) -> None:
    rootfs = umoci_unpack(fixture_layouts["busybox"], tmp_path / "bundle")
    assert images.check_tree(rootfs, images.busybox_expected()) == []
    # the applet links resolve inside the rootfs: sh, id and the passwd file work together
    result = subprocess.run(
        ["chroot", str(rootfs), "/bin/sh", "-c", "id -un; cat /etc/hostname; env true && echo ok"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "root\nbusybox\nok\n"

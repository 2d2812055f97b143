"""Push to the real docker-registry; skopeo and umoci read back what portside wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portside.images.copy import CopyOptions, copy
from portside.images.store import ImageStore
from portside.images.transports.local import LocalDestination
from portside.images.transports.oci_layout import OciLayoutSource
from tests.conftest import need_tool
from tests.fixtures.registry import Registry
from tests.integration.test_registry_faults import FaultProxy

PORTSIDE = [sys.executable, "-m", "portside.cli"]


def portside(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*PORTSIDE, *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"portside {' '.join(args)} failed: {r.stderr}")
    return r


def skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _load_layout(layout: Path, name: str) -> ImageStore:
    """Put a fixture layout into the store under `name` (not from any registry)."""
    store = ImageStore(Path(os.environ["PORTSIDE_ROOT"]))
    dest = LocalDestination(store, names=[name])
    try:
        copy(OciLayoutSource.from_dir(layout, "latest"), dest, CopyOptions())
    finally:
        dest.close()
    return store


@pytest.mark.interop
@pytest.mark.timeout(120)
def test_pushed_image_read_by_skopeo_and_umoci(
    registry: Registry, fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    need_tool("umoci")
    store = _load_layout(fixture_layouts["multilayer-gzip"], "localhost/ml:1")
    stored = store.content.read_bytes(store.get("localhost/ml:1").manifest_digest)
    target = f"{registry.host}/pushtest/ml:v1"
    digest = portside("push", "-q", "localhost/ml:1", target, "--digestfile", str(tmp_path / "d"))
    assert digest.stdout == ""
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{target}")
    assert raw.encode() == stored  # the exact bytes
    assert (
        tmp_path / "d"
    ).read_text() == f"sha256:{__import__('hashlib').sha256(stored).hexdigest()}"
    oci = tmp_path / "oci"
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{target}", f"oci:{oci}:v1")
    bundle = tmp_path / "bundle"
    r = subprocess.run(
        ["umoci", "unpack", "--image", f"{oci}:v1", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (bundle / "rootfs" / "bin" / "busybox").is_file()
    # and portside pulls back the same digest
    store2_root = tmp_path / "other"
    r2 = subprocess.run(
        [*PORTSIDE, "--root", str(store2_root), "pull", "-q", target],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r2.returncode == 0, r2.stderr
    assert (
        ImageStore(store2_root).get(target).manifest_digest
        == store.get("localhost/ml:1").manifest_digest
    )


@pytest.mark.interop
@pytest.mark.timeout(120)
def test_push_docker_format_and_chunked(
    registry: Registry, fixture_layouts: dict[str, Path]
) -> None:
    need_tool("skopeo")
    _load_layout(fixture_layouts["busybox"], "localhost/bb:1")
    target = f"{registry.host}/pushtest/bb-docker:v1"
    portside("push", "-q", "--format", "docker", "--chunk-size", "100000", "localhost/bb:1", target)
    doc = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{target}"))
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert doc["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{target}"))
    assert info["Architecture"]


@pytest.mark.interop
@pytest.mark.timeout(120)
def test_push_zstd_recompressed(
    registry: Registry, fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    _load_layout(fixture_layouts["multilayer-gzip"], "localhost/ml:z")
    target = f"{registry.host}/pushtest/ml-zstd:v1"
    portside("push", "-q", "--compression-format", "zstd", "localhost/ml:z", target)
    doc = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{target}"))
    assert {layer["mediaType"] for layer in doc["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{target}", f"oci:{tmp_path / 'z'}:v1")
    # pulled back by portside, every blob verified
    r = subprocess.run(
        [*PORTSIDE, "--root", str(tmp_path / "r2"), "pull", "-q", target],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(120)
def test_push_mounts_blobs_from_a_sibling_repository(
    registry: Registry, pushed_images: dict[str, str]
) -> None:
    proxy = FaultProxy(registry.host)
    try:
        src = f"{proxy.host}/{pushed_images['multilayer-gzip'].split('/', 1)[1]}"
        portside("pull", "-q", src)
        portside("push", "-q", src, f"{proxy.host}/pushtest/mounted:v1")
        posts = [p for m, p, _ in proxy.requests if m == "POST"]
        uploads = [p for m, p, _ in proxy.requests if m in ("PUT", "PATCH") and "/blobs/" in p]
    finally:
        proxy.close()
    assert posts and all("mount=" in p and "from=portside-test" in p for p in posts)
    assert uploads == []


@pytest.mark.timeout(60)
def test_platform_choice_and_rmi_frees_blobs(pushed_images: dict[str, str]) -> None:
    ref = pushed_images["multiplatform"]
    portside("pull", "-q", "--platform", "linux/arm64", ref)
    info = json.loads(portside("image", "inspect", ref).stdout)[0]
    assert info["Architecture"] == "arm64"
    assert info["RepoDigests"][0].split("@")[1].startswith("sha256:")
    portside("rmi", ref)
    store = ImageStore(Path(os.environ["PORTSIDE_ROOT"]))
    assert store.images() == []
    assert list(store.content.blobs()) == []


@pytest.mark.timeout(60)
def test_cli_errors_are_one_line(registry: Registry) -> None:
    r = portside("pull", f"{registry.host}/nope/missing:1", check=False)
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr.lower()
    r = portside("rmi", "nothere", check=False)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
    r = portside("pull", "UPPER/case", check=False)
    assert r.returncode == 125 and "lowercase" in r.stderr


@pytest.mark.interop
@pytest.mark.timeout(120)
def test_push_all_platforms_of_an_index(
    registry: Registry, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    need_tool("skopeo")
    ref = pushed_images["multiplatform"]
    portside("pull", "-q", ref)  # only the host's platform
    target = f"{registry.host}/pushtest/multi:v1"
    r = portside("push", "--all", ref, target, check=False)
    assert r.returncode == 125 and "--all-platforms" in r.stderr
    portside("pull", "-q", "--all-platforms", ref)
    portside("push", "-q", "--all", ref, target)
    layout = fixture_layouts["multiplatform"]
    index_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    want = (layout / "blobs" / "sha256" / index_digest[7:]).read_bytes()
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{target}")
    assert raw.encode() == want
    for child in json.loads(want)["manifests"]:
        skopeo(
            "inspect",
            "--tls-verify=false",
            "--raw",
            f"docker://{target.split(':v1')[0]}@{child['digest']}",
        )

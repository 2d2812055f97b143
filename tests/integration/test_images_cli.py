"""The image verbs end to end: images, tag, inspect, rmi, prune, system df/check, search,
registries.conf mirrors and aliases, against the real registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portside.content import ContentStore
from tests.fixtures.registry import Registry

PORTSIDE = [sys.executable, "-m", "portside.cli"]


def portside(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [*PORTSIDE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    if check and r.returncode != 0:
        raise AssertionError(f"portside {' '.join(args)} failed: {r.stderr}")
    return r


@pytest.mark.timeout(120)
def test_list_tag_inspect_remove_prune(pushed_images: dict[str, str]) -> None:
    bb, ml = pushed_images["busybox"], pushed_images["multilayer-gzip"]
    bb_id = portside("pull", "-q", bb).stdout.strip()
    ml_id = portside("pull", "-q", ml).stdout.strip()
    assert bb_id != ml_id and len(bb_id) == 64

    table = portside("images").stdout.splitlines()
    assert table[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert any(bb_id[:12] in line for line in table[1:])
    listed = json.loads(portside("images", "--format", "json").stdout)
    assert {i["Id"] for i in listed} == {bb_id, ml_id}
    assert set(portside("images", "-q", "--no-trunc").stdout.split()) == {bb_id, ml_id}
    assert "sha256:" in portside("images", "--digests").stdout
    lines = portside("images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout.split("\n")
    assert f"{bb_id[:12]} {bb}" in lines

    portside("tag", bb, "localhost/mybox:1", "mybox:2")
    info = json.loads(portside("inspect", "mybox:2").stdout)[0]
    assert info["Id"] == f"sha256:{bb_id}"
    assert set(info["RepoTags"]) == {bb, "localhost/mybox:1", "docker.io/library/mybox:2"}
    assert info["RootFS"]["Type"] == "layers" and info["RootFS"]["Layers"]
    assert info["Os"] == "linux" and info["Config"]["Cmd"] == ["sh"]
    assert portside("inspect", "--format", "{{.Id}}", bb_id[:10]).stdout.strip() == info["Id"]

    # by ID with several names: refused; by name: untag only
    r = portside("rmi", bb_id, check=False)
    assert r.returncode == 125 and "multiple names" in r.stderr
    assert portside("rmi", "mybox:2").stdout.strip() == "Untagged: docker.io/library/mybox:2"

    df = portside("system", "df", "-v").stdout
    assert "Images" in df and bb_id[:12] in df

    # untag everything of busybox: it is dangling, prune removes it; the shared layer stays
    portside("rmi", "localhost/mybox:1")
    portside("rmi", bb)
    assert portside("images", "-q").stdout.split() == [ml_id[:12]]
    portside("pull", "-q", bb)
    portside("rmi", "-f", bb_id)
    store = ContentStore(Path(os.environ["PORTSIDE_ROOT"]) / "content")
    assert store.verify_all() == []
    assert portside("system", "check").returncode == 0
    pruned = portside("image", "prune", "-a").stdout.split()
    assert pruned == [ml_id]
    assert list(store.blobs()) == []


@pytest.mark.timeout(60)
def test_system_check_finds_and_repairs_a_corrupt_blob(pushed_images: dict[str, str]) -> None:
    portside("pull", "-q", pushed_images["busybox"])
    store = ContentStore(Path(os.environ["PORTSIDE_ROOT"]) / "content")
    digest, _ = max(store.blobs(), key=lambda b: b[1])
    path = store.blob_path(digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    r = portside("system", "check", check=False)
    assert r.returncode != 0 and str(digest) in r.stdout
    portside("system", "check", "--repair")
    assert portside("system", "check").returncode == 0
    assert portside("images", "-q").stdout == ""  # the image lost a layer: forgotten


@pytest.mark.timeout(60)
def test_search_list_tags(registry: Registry, pushed_images: dict[str, str]) -> None:
    repo = pushed_images["busybox"].rsplit(":", 1)[0]
    out = json.loads(portside("search", "--list-tags", "--format", "json", repo).stdout)
    assert out == [{"Name": repo, "Tags": ["latest"]}]
    assert portside("image", "tags", repo).stdout.split() == ["latest"]


@pytest.mark.timeout(60)
def test_registries_conf_mirror_alias_and_block(
    registry: Registry, pushed_images: dict[str, str], tmp_path: Path
) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text(
        'unqualified-search-registries = ["nowhere.invalid"]\n'
        "[[registry]]\n"
        'prefix = "images.example.invalid"\n'
        'location = "images.example.invalid"\n'
        "[[registry.mirror]]\n"
        f'location = "{registry.host}"\n'
        "[[registry]]\n"
        'location = "blocked.example.invalid"\n'
        "blocked = true\n"
        "[aliases]\n"
        f'"tiny" = "{registry.host}/portside-test/busybox"\n'
    )
    env = {"CONTAINERS_REGISTRIES_CONF": str(conf)}
    # the mirror serves a name whose own registry does not exist
    r = portside("pull", "-q", "images.example.invalid/portside-test/busybox:latest", env=env)
    assert len(r.stdout.strip()) == 64
    # a short-name alias
    portside("pull", "-q", "tiny", env=env)
    names = json.loads(portside("images", "--format", "json").stdout)
    assert any(f"{registry.host}/portside-test/busybox:latest" in i["Names"] for i in names)
    r = portside("pull", "blocked.example.invalid/x:1", check=False, env=env)
    assert r.returncode == 125 and "blocked" in r.stderr


@pytest.mark.timeout(60)
def test_all_platforms_siblings_listed_only_with_a(pushed_images: dict[str, str]) -> None:
    portside("pull", "-q", "--all-platforms", pushed_images["multiplatform"])
    assert len(portside("images", "-q").stdout.split()) == 1
    assert len(portside("images", "-q", "-a").stdout.split()) == 2
    assert portside("image", "prune").stdout == ""  # the sibling is not dangling

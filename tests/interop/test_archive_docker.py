"""docker-archives written by portside are read by skopeo with identical configs and diffIDs,
and the ones skopeo (and Docker 25+) write are read by portside."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from portside.errors import DigestMismatch, InvalidDocument, NotFound
from portside.images.transports.docker_archive import (
    DockerArchive,
    DockerArchiveDestination,
    DockerArchiveSource,
    DockerArchiveWriter,
)
from portside.images.transports.oci_layout import OciLayoutDestination, OciLayoutSource
from portside.oci import mediatypes as mt
from tests.conftest import need_tool
from tests.fixtures.images import read_blob, read_json_blob, tagged_descriptor
from tests.unit.test_archive_copyloop import mini_copy

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def run(*cmd: str) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, f"{cmd}: {result.stderr}"
    return result.stdout


def config_of(layout: Path, tag: str = "latest") -> tuple[str, dict]:
    manifest = read_json_blob(layout, tagged_descriptor(layout, tag)["digest"])
    digest = manifest["config"]["digest"]
    return digest, read_json_blob(layout, digest)


def layer_diff_ids(layout: Path, tag: str = "latest") -> list[str]:
    """The sha256 of each layer blob after decompression, computed here independently."""
    import zstandard

    manifest = read_json_blob(layout, tagged_descriptor(layout, tag)["digest"])
    out = []
    for layer in manifest["layers"]:
        data = read_blob(layout, layer["digest"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        out.append("sha256:" + hashlib.sha256(data).hexdigest())
    return out


@pytest.mark.parametrize("name", ["multilayer-gzip", "multilayer-zstd", "busybox"])
def test_docker_archive_written_by_portside_is_read_by_skopeo(
    fixture_layouts: dict[str, Path], tmp_path: Path, name: str
) -> None:
    need_tool("skopeo")
    src = fixture_layouts[name]
    archive = tmp_path / "d.tar"
    mini_copy(OciLayoutSource.from_dir(src), DockerArchiveDestination(archive, "example/img:v1"))
    manifest = json.loads(run("tar", "-xOf", str(archive), "manifest.json"))
    assert manifest[0]["RepoTags"] == ["docker.io/example/img:v1"]
    out = tmp_path / "out"
    run("skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{out}:x")
    # skopeo gzips the layers for oci: and so re-serialises the config: compare it parsed.
    got_config = config_of(out, "x")[1]
    assert got_config == config_of(src)[1]
    assert got_config["rootfs"]["diff_ids"] == layer_diff_ids(src)
    assert layer_diff_ids(out, "x") == layer_diff_ids(src)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".d.tar")]


def test_several_images_in_one_docker_archive(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    archive = tmp_path / "two.tar"
    writer = DockerArchiveWriter(archive)
    try:
        mini_copy(
            OciLayoutSource.from_dir(fixture_layouts["busybox"]),
            writer.destination(["bb:1", "bb:2"]),
        )
        mini_copy(
            OciLayoutSource.from_dir(fixture_layouts["multilayer-none"]), writer.destination(["ml"])
        )
        mini_copy(
            OciLayoutSource.from_dir(fixture_layouts["busybox"]), writer.destination(["bb:3"])
        )
        writer.commit()
    finally:
        writer.close()
    for ref, layout in (("bb:2", "busybox"), ("ml:latest", "multilayer-none")):
        out = tmp_path / ref.replace(":", "-")
        run("skopeo", "copy", "-q", f"docker-archive:{archive}:{ref}", f"oci:{out}:x")
        assert config_of(out, "x")[1] == config_of(fixture_layouts[layout])[1]
    with DockerArchive(archive) as opened:
        lib = "docker.io/library/"
        assert [i.repo_tags for i in opened.images] == [
            (f"{lib}bb:1", f"{lib}bb:2", f"{lib}bb:3"),
            (f"{lib}ml:latest",),
        ]
        assert opened.select("docker.io/library/ml:latest").index == 1


@pytest.mark.parametrize("compress", [None, "gzip"])
def test_docker_archive_written_by_skopeo_is_read_by_portside(
    fixture_layouts: dict[str, Path], tmp_path: Path, compress: str | None
) -> None:
    need_tool("skopeo")
    src = fixture_layouts["multilayer-gzip"]
    archive = tmp_path / "sk.tar"
    run("skopeo", "copy", "-q", f"oci:{src}:latest", f"docker-archive:{archive}:foo/bar:v1")
    if compress:
        run(compress, "-q", str(archive))
        archive = archive.with_name("sk.tar.gz")
    source = DockerArchiveSource(archive, "foo/bar:v1")
    raw, media = source.get_manifest()
    assert media == mt.DOCKER_MANIFEST
    assert [x["mediaType"] for x in json.loads(raw)["layers"]] == [mt.DOCKER_LAYER_TAR] * 4
    out = tmp_path / "out"
    mini_copy(source, OciLayoutDestination(out, "x"))
    assert config_of(out, "x")[0] == config_of(src)[0]
    assert layer_diff_ids(out, "x") == layer_diff_ids(src)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".portside")]


def _docker25_archive(src_layout: Path, dest: Path) -> None:
    """What Docker 25+ `docker save` writes: an OCI layout plus manifest.json naming blobs,
    with one layer stored through a symlink (Docker dedups that way)."""
    tree = dest.with_suffix(".d")
    shutil.copytree(src_layout, tree)
    manifest = read_json_blob(tree, tagged_descriptor(tree)["digest"])
    layers = [f"blobs/sha256/{x['digest'].split(':')[1]}" for x in manifest["layers"]]
    first = tree / layers[0]
    (tree / "layer0.tar").write_bytes(first.read_bytes())
    first.unlink()
    first.symlink_to("../../layer0.tar")
    entry = {
        "Config": f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}",
        "RepoTags": ["busybox:latest"],
        "Layers": layers,
    }
    (tree / "manifest.json").write_text(json.dumps([entry]))
    with tarfile.open(dest, "w") as tf:
        for p in sorted(tree.rglob("*")):
            tf.add(p, p.relative_to(tree).as_posix(), recursive=False)


def test_docker25_style_archive_is_read(fixture_layouts: dict[str, Path], tmp_path: Path) -> None:
    archive = tmp_path / "d25.tar"
    _docker25_archive(fixture_layouts["multilayer-none"], archive)
    out = tmp_path / "out"
    mini_copy(DockerArchiveSource(archive), OciLayoutDestination(out, "x"))
    assert config_of(out, "x")[0] == config_of(fixture_layouts["multilayer-none"])[0]


def test_bad_docker_archives_fail_with_one_line_and_leave_nothing(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    archive = tmp_path / "sk.tar"
    run(
        "skopeo",
        "copy",
        "-q",
        f"oci:{fixture_layouts['busybox']}:latest",
        f"docker-archive:{archive}",
    )
    data = archive.read_bytes()
    # truncated
    bad = tmp_path / "trunc.tar"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises((InvalidDocument, NotFound)) as err:
        mini_copy(DockerArchiveSource(bad), OciLayoutDestination(tmp_path / "o1"))
    assert "trunc.tar" in str(err.value) and "\n" not in str(err.value)
    # manifest.json pointing to a missing layer
    tree = tmp_path / "tree"
    tree.mkdir()
    run("tar", "-xf", str(archive), "-C", str(tree))
    entry = json.loads((tree / "manifest.json").read_text())
    entry[0]["Layers"][0] = "nope/layer.tar"
    (tree / "manifest.json").write_text(json.dumps(entry))
    missing = tmp_path / "missing.tar"
    run("tar", "-cf", str(missing), "-C", str(tree), ".")
    with pytest.raises(NotFound, match=r"nope/layer\.tar"):
        DockerArchiveSource(missing)
    # a layer whose bytes are not the diffID the config names
    entry[0]["Layers"][0] = next(p.name for p in tree.iterdir() if p.name.endswith(".tar"))
    (tree / "manifest.json").write_text(json.dumps(entry))
    layer = tree / entry[0]["Layers"][0]
    content = bytearray(layer.read_bytes())
    content[600] ^= 0xFF
    layer.write_bytes(bytes(content))
    corrupt = tmp_path / "corrupt.tar"
    run("tar", "-cf", str(corrupt), "-C", str(tree), ".")
    with pytest.raises(DigestMismatch) as err2:
        mini_copy(DockerArchiveSource(corrupt), OciLayoutDestination(tmp_path / "o2"))
    assert "\n" not in str(err2.value)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    # a destination fed a layer that lies about its digest leaves no archive
    out = tmp_path / "never.tar"
    dest = DockerArchiveDestination(out, "x:y")
    from portside.images.transports.oci_layout import Blob

    with pytest.raises(DigestMismatch):
        dest.put_blob(Blob("sha256:" + "1" * 64, 3, mt.DOCKER_LAYER_TAR), iter([b"abc"]))
    dest.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "never" in p.name) == []

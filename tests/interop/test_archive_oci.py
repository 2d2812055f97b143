"""OCI layouts and oci-archives written by portside are read by skopeo and umoci, and
the ones skopeo writes are read by portside, digest for digest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from portside.errors import InvalidDocument, NotFound
from portside.images.transports.oci_archive import (
    OciArchive,
    OciArchiveDestination,
    OciArchiveSource,
    OciArchiveWriter,
)
from portside.images.transports.oci_layout import OciLayoutDestination, OciLayoutSource
from tests.conftest import need_root, need_tool
from tests.fixtures.images import check_tree, read_blob, tagged_descriptor
from tests.unit.test_archive_copyloop import mini_copy

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def run(*cmd: str) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, f"{cmd}: {result.stderr}"
    return result.stdout


def blob_names(layout: Path) -> list[str]:
    return sorted(p.name for p in (layout / "blobs" / "sha256").iterdir())


def test_layout_written_by_portside_is_read_by_skopeo_and_unpacked_by_umoci(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    need_tool("umoci")
    need_root()
    lay = tmp_path / "lay"
    top = mini_copy(
        OciLayoutSource.from_dir(fixture_layouts["multilayer-gzip"]),
        OciLayoutDestination(lay, "v1"),
    )
    assert run("skopeo", "inspect", "--raw", f"oci:{lay}:v1").encode() == top
    info = json.loads(run("skopeo", "inspect", f"oci:{lay}:v1"))
    assert info["Layers"] == [layer["digest"] for layer in json.loads(top)["layers"]]
    run("umoci", "unpack", "--image", f"{lay}:v1", str(tmp_path / "bundle"))
    assert check_tree(tmp_path / "bundle" / "rootfs") == []


def test_oci_archive_written_by_portside_is_copied_by_skopeo_and_unpacked_by_umoci(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    need_tool("umoci")
    need_root()
    archive = tmp_path / "img.tar"
    src_layout = fixture_layouts["multilayer-none"]  # umoci 0.4.7 cannot read zstd layers
    top = mini_copy(OciLayoutSource.from_dir(src_layout), OciArchiveDestination(archive, "v2"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".img.tar")]
    assert run("skopeo", "inspect", "--raw", f"oci-archive:{archive}:v2").encode() == top
    out = tmp_path / "out"
    run("skopeo", "copy", "-q", "--preserve-digests", f"oci-archive:{archive}:v2", f"oci:{out}:x")
    assert tagged_descriptor(out, "x")["digest"] == tagged_descriptor(src_layout)["digest"]
    assert blob_names(out) == blob_names(src_layout)
    # umoci unpacks from a directory: extract the archive as a plain tar first.
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    run("tar", "-xf", str(archive), "-C", str(extracted))
    run("umoci", "unpack", "--image", f"{extracted}:v2", str(tmp_path / "bundle"))
    assert check_tree(tmp_path / "bundle" / "rootfs") == []


def test_several_images_in_one_archive_keep_their_names(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    archive = tmp_path / "two.tar"
    writer = OciArchiveWriter(archive)
    try:
        mini_copy(OciLayoutSource.from_dir(fixture_layouts["busybox"]), writer.destination("bb"))
        mini_copy(
            OciLayoutSource.from_dir(fixture_layouts["multiplatform"]), writer.destination("mp")
        )
        writer.commit()
    finally:
        writer.close()
    for name, layout in (("bb", "busybox"), ("mp", "multiplatform")):
        raw = run("skopeo", "inspect", "--raw", f"oci-archive:{archive}:{name}").encode()
        assert raw == read_blob(
            fixture_layouts[layout], tagged_descriptor(fixture_layouts[layout])["digest"]
        )
    with OciArchive(archive) as opened:
        assert sorted(opened.reader.names()) == ["bb", "mp"]


@pytest.mark.parametrize("compress", [None, "gzip", "zstd"])
def test_oci_archive_written_by_skopeo_is_read_by_portside(
    fixture_layouts: dict[str, Path], tmp_path: Path, compress: str | None
) -> None:
    need_tool("skopeo")
    src_layout = fixture_layouts["multilayer-gzip"]
    archive = tmp_path / "sk.tar"
    run("skopeo", "copy", "-q", f"oci:{src_layout}:latest", f"oci-archive:{archive}:name")
    if compress:
        run(compress, "-q", str(archive))
        archive = archive.with_name(archive.name + (".gz" if compress == "gzip" else ".zst"))
    out = tmp_path / "out"
    mini_copy(OciArchiveSource(archive, "name"), OciLayoutDestination(out, "x"))
    assert tagged_descriptor(out, "x")["digest"] == tagged_descriptor(src_layout)["digest"]
    assert blob_names(out) == blob_names(src_layout)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".portside")]


def test_bad_oci_archives_fail_with_one_line(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    archive = tmp_path / "sk.tar"
    run(
        "skopeo", "copy", "-q", f"oci:{fixture_layouts['busybox']}:latest", f"oci-archive:{archive}"
    )
    data = archive.read_bytes()
    truncated = tmp_path / "trunc.tar"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises((InvalidDocument, NotFound)) as err:
        mini_copy(OciArchiveSource(truncated), OciLayoutDestination(tmp_path / "o1"))
    assert "trunc.tar" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "o1").exists()
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar" * 100)
    with pytest.raises(InvalidDocument, match=r"garbage\.tar"):
        OciArchiveSource(garbage)

"""A minimal copy loop over the transport protocol, and the layout round trips it drives.

`mini_copy` is what the archive tests use to move images between transports
independently of images/copy.py, so the transports are tested on their own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from portside.errors import DigestMismatch, InvalidArgument, NotFound, UnsupportedMediaType
from portside.images import convert
from portside.images.transport import ImageDestination, ImageSource
from portside.images.transports.oci_layout import (
    Blob,
    OciLayoutDestination,
    OciLayoutSource,
    parse_oci_spec,
)
from portside.oci import mediatypes as mt
from tests.fixtures.images import build_busybox_layout, read_blob


def _copy_one(
    src: ImageSource,
    dst: ImageDestination,
    raw: bytes,
    media: str,
    instance: str | None,
    fmt: str | None,
) -> tuple[str, int, str]:
    doc = json.loads(raw)
    for desc in [doc["config"], *doc["layers"]]:
        blob = Blob(desc["digest"], desc["size"], desc["mediaType"])
        if not dst.has_blob(blob):
            dst.put_blob(blob, src.get_blob(blob))
    target = convert.choose_type(media, dst.supported_manifest_types(), fmt)
    out = convert.convert_manifest(raw, media, target)
    dst.put_manifest(out, target, instance)
    from portside.oci.digest import Digest

    return str(Digest.from_bytes(out)), len(out), target


def mini_copy(src: ImageSource, dst: ImageDestination, fmt: str | None = None) -> bytes:
    """Copy the source's image (or whole index) to dst and commit; return the top bytes."""
    try:
        raw, media = src.get_manifest()
        if mt.is_index(media):
            children = {}
            for child in json.loads(raw)["manifests"]:
                craw, cmedia = src.get_manifest(child["digest"])
                children[child["digest"]] = _copy_one(src, dst, craw, cmedia, child["digest"], fmt)
            target = convert.choose_type(media, dst.supported_manifest_types(), fmt)
            out = convert.convert_index(raw, media, target, children)
            dst.put_manifest(out, target)
        else:
            out = raw
            _copy_one(src, dst, raw, media, None, fmt)
            target = convert.choose_type(media, dst.supported_manifest_types(), fmt)
            out = convert.convert_manifest(raw, media, target)
        dst.commit()
        return out
    finally:
        dst.close()
        src.close()


def test_parse_oci_spec_splits_at_the_first_colon() -> None:
    assert parse_oci_spec("oci:/tmp/x") == ("/tmp/x", None)
    assert parse_oci_spec("oci:/tmp/x:busybox:latest") == ("/tmp/x", "busybox:latest")
    assert parse_oci_spec("/tmp/y:v1") == ("/tmp/y", "v1")
    with pytest.raises(InvalidArgument):
        parse_oci_spec("oci::v1")


def test_layout_round_trip_keeps_every_byte(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    for name in ("busybox", "multilayer-zstd", "multiplatform"):
        src_dir = fixture_layouts[name]
        dst_dir = tmp_path / name
        top = mini_copy(
            OciLayoutSource.from_dir(src_dir, "latest"), OciLayoutDestination(dst_dir, "v1")
        )
        index = json.loads((dst_dir / "index.json").read_text())
        (entry,) = index["manifests"]
        assert entry["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
        src_index = json.loads((src_dir / "index.json").read_text())
        assert entry["digest"] == src_index["manifests"][0]["digest"]
        assert read_blob(dst_dir, entry["digest"]) == top
        assert json.loads((dst_dir / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
        src_blobs = sorted(p.name for p in (src_dir / "blobs" / "sha256").iterdir())
        dst_blobs = sorted(p.name for p in (dst_dir / "blobs" / "sha256").iterdir())
        assert dst_blobs == src_blobs, name


def test_destination_adds_and_replaces_by_ref_name(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    dst = tmp_path / "lay"
    mini_copy(OciLayoutSource.from_dir(fixture_layouts["busybox"]), OciLayoutDestination(dst, "a"))
    mini_copy(
        OciLayoutSource.from_dir(fixture_layouts["multilayer-gzip"]), OciLayoutDestination(dst, "b")
    )
    mini_copy(
        OciLayoutSource.from_dir(fixture_layouts["multilayer-none"]), OciLayoutDestination(dst, "a")
    )
    names = [
        e["annotations"]["org.opencontainers.image.ref.name"]
        for e in json.loads((dst / "index.json").read_text())["manifests"]
    ]
    assert sorted(names) == ["a", "b"]
    src = OciLayoutSource.from_dir(dst, "a")
    none_digest = json.loads((fixture_layouts["multilayer-none"] / "index.json").read_text())[
        "manifests"
    ][0]["digest"]
    assert src.entry["digest"] == none_digest
    with pytest.raises(InvalidArgument, match="holds 2 images; name one of a, b"):
        OciLayoutSource.from_dir(dst)
    with pytest.raises(NotFound, match="no image named 'c'"):
        OciLayoutSource.from_dir(dst, "c")
    assert OciLayoutSource.from_dir(dst, "@0").ref_name == "b"


def test_a_lying_blob_leaves_nothing_behind(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    dst_dir = tmp_path / "out"
    dst = OciLayoutDestination(dst_dir, "x")
    blob = Blob("sha256:" + "0" * 64, 5, mt.OCI_LAYER_TAR)
    with pytest.raises(DigestMismatch, match="sha256:0000"):
        dst.put_blob(blob, iter([b"hello"]))
    assert list((dst_dir / "blobs" / "sha256").iterdir()) == []
    dst.close()
    assert not dst_dir.exists()


def test_close_without_commit_removes_only_new_blobs(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    lay = tmp_path / "lay"
    shutil.copytree(fixture_layouts["busybox"], lay)
    before = sorted(p.name for p in (lay / "blobs" / "sha256").iterdir())
    dst = OciLayoutDestination(lay, "other")
    data = b"a new blob"
    from portside.oci.digest import Digest

    dst.put_blob(Blob(Digest.from_bytes(data), len(data), mt.OCI_LAYER_TAR), iter([data]))
    dst.close()
    assert sorted(p.name for p in (lay / "blobs" / "sha256").iterdir()) == before


def test_source_names_a_missing_or_corrupt_manifest(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    lay = tmp_path / "lay"
    shutil.copytree(fixture_layouts["busybox"], lay)
    entry = json.loads((lay / "index.json").read_text())["manifests"][0]
    path = lay / "blobs" / "sha256" / entry["digest"].split(":")[1]
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(DigestMismatch, match=entry["digest"]):
        OciLayoutSource.from_dir(lay).get_manifest()
    path.unlink()
    with pytest.raises(NotFound, match="missing blob " + entry["digest"]):
        OciLayoutSource.from_dir(lay).get_manifest()


def test_schema1_in_a_layout_is_refused(tmp_path: Path) -> None:
    build_busybox_layout(tmp_path / "lay")
    lay = tmp_path / "lay"
    raw = json.dumps({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}).encode()
    from portside.oci.digest import Digest

    d = Digest.from_bytes(raw)
    (lay / "blobs" / "sha256" / d.hex).write_bytes(raw)
    index = json.loads((lay / "index.json").read_text())
    index["manifests"] = [{"mediaType": mt.DOCKER_SCHEMA1_SIGNED, "digest": d, "size": len(raw)}]
    (lay / "index.json").write_text(json.dumps(index))
    with pytest.raises(UnsupportedMediaType, match="schema 1"):
        OciLayoutSource.from_dir(lay).get_manifest()


def test_transport_names_open_the_right_transport(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    from portside.images.transports import spec

    assert spec.is_archive_spec("oci-archive:/x.tar") and not spec.is_archive_spec("busybox:1")
    with pytest.raises(InvalidArgument, match="not an archive image name"):
        spec.open_source("docker://busybox")
    src = f"oci:{fixture_layouts['busybox']}:latest"
    mini_copy(spec.open_source(src), spec.open_destination(f"oci-archive:{tmp_path}/a.tar", "a:1"))
    mini_copy(
        spec.open_source(f"oci-archive:{tmp_path}/a.tar:a:1"),
        spec.open_destination(f"docker-archive:{tmp_path}/d.tar:b/c:2"),
    )
    mini_copy(
        spec.open_source(f"docker-archive:{tmp_path}/d.tar:b/c:2"),
        spec.open_destination(f"oci:{tmp_path}/lay", "z"),
    )
    assert OciLayoutSource.from_dir(tmp_path / "lay", "z").get_manifest()[1] == mt.OCI_MANIFEST


def test_concurrent_writers_of_one_layout_keep_every_name(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lay = tmp_path / "lay"
    OciLayoutDestination(lay).close()  # created and removed again: nothing committed
    assert not lay.exists()
    lay.mkdir()

    def one(i: int) -> None:
        mini_copy(
            OciLayoutSource.from_dir(fixture_layouts["busybox"]), OciLayoutDestination(lay, f"t{i}")
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(16)))
    names = OciLayoutSource.from_dir(lay, "t0").reader.names()
    assert sorted(names) == sorted(f"t{i}" for i in range(16))

"""The fixture image builders: valid OCI layouts, stable digests, the edge cases they promise."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import zstandard

from tests.conftest import SPECS
from tests.fixtures import images

SCHEMAS = SPECS / "image-spec" / "schema"


@cache
def schema_registry() -> referencing.Registry:
    """The image-spec schemas refer to each other by relative names under several base ids."""

    def retrieve(uri: str) -> referencing.Resource:
        contents = json.loads((SCHEMAS / uri.rsplit("/", 1)[-1]).read_text())
        return referencing.Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT4
        )

    return referencing.Registry(retrieve=retrieve)


def validate(instance: dict[str, Any], schema_file: str) -> None:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    jsonschema.Draft4Validator(schema, registry=schema_registry()).validate(instance)


def decompress(data: bytes, media_type: str) -> bytes:
    if media_type.endswith("+gzip"):
        return gzip.decompress(data)
    if media_type.endswith("+zstd"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def image_of(layout: Path, tag: str = "latest") -> tuple[dict[str, Any], dict[str, Any]]:
    desc = images.tagged_descriptor(layout, tag)
    manifest = images.read_json_blob(layout, desc["digest"])
    return manifest, images.read_json_blob(layout, manifest["config"]["digest"])


def layer_members(layout: Path, index: int) -> dict[str, tarfile.TarInfo]:
    manifest, _ = image_of(layout)
    layer = manifest["layers"][index]
    raw = decompress(images.read_blob(layout, layer["digest"]), layer["mediaType"])
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def test_every_blob_is_named_by_its_sha256(fixture_layouts: dict[str, Path]) -> None:
    for layout in fixture_layouts.values():
        assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
        for blob in (layout / "blobs" / "sha256").iterdir():
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob


def test_layouts_validate_against_image_spec_schemas(fixture_layouts: dict[str, Path]) -> None:
    for name, layout in fixture_layouts.items():
        index = json.loads((layout / "index.json").read_text())
        validate(index, "image-index-schema.json")
        descs = index["manifests"]
        if name == "multiplatform":
            nested = images.read_json_blob(layout, descs[0]["digest"])
            validate(nested, "image-index-schema.json")
            descs = nested["manifests"]
        for desc in descs:
            manifest = images.read_json_blob(layout, desc["digest"])
            validate(manifest, "image-manifest-schema.json")
            validate(
                images.read_json_blob(layout, manifest["config"]["digest"]), "config-schema.json"
            )


def test_builds_are_deterministic(tmp_path: Path, fixture_layouts: dict[str, Path]) -> None:
    again = images.build_all(tmp_path / "again")
    for name, layout in fixture_layouts.items():
        assert (again[name] / "index.json").read_bytes() == (layout / "index.json").read_bytes()
        assert sorted(p.name for p in (again[name] / "blobs" / "sha256").iterdir()) == sorted(
            p.name for p in (layout / "blobs" / "sha256").iterdir()
        ), name


def test_compressions_carry_the_same_tars(fixture_layouts: dict[str, Path]) -> None:
    """Same diff_ids whatever the compression, and each layer decompresses to its diff_id."""
    diff_ids = set()
    for comp, media in images.MEDIA_LAYER.items():
        layout = fixture_layouts[f"multilayer-{comp}"]
        manifest, config = image_of(layout)
        assert len(manifest["layers"]) == 4
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            assert layer["mediaType"] == media
            raw = decompress(images.read_blob(layout, layer["digest"]), media)
            assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
        diff_ids.add(tuple(config["rootfs"]["diff_ids"]))
    assert len(diff_ids) == 1
    # the busybox layout's only layer is the multilayer image's base layer
    busybox_manifest, _ = image_of(fixture_layouts["busybox"])
    gzip_manifest, _ = image_of(fixture_layouts["multilayer-gzip"])
    assert busybox_manifest["layers"][0] == gzip_manifest["layers"][0]


def test_busybox_layer_and_config(fixture_layouts: dict[str, Path]) -> None:
    layout = fixture_layouts["busybox"]
    _, config = image_of(layout)
    assert config["config"]["Cmd"] == ["sh"]
    assert config["architecture"] == images.host_arch() and config["os"] == "linux"
    members = layer_members(layout, 0)
    busybox = members["bin/busybox"]
    assert busybox.isfile() and busybox.mode == 0o755
    names = {name.rsplit("/", 1)[-1]: m for name, m in members.items() if m.issym()}
    for applet in images.REQUIRED_APPLETS:
        assert names[applet].issym() and names[applet].linkname == "/bin/busybox", applet
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    for path in ("proc", "sys", "dev", "etc"):
        assert members[path].isdir()
    assert b"nobody:x:65534" in images.PASSWD
    assert {m.mtime for m in members.values()} == {images.MTIME}


def test_multilayer_tars_hold_the_edge_cases(fixture_layouts: dict[str, Path]) -> None:
    layout = fixture_layouts["multilayer-zstd"]
    lower, upper, top = (layer_members(layout, i) for i in (1, 2, 3))
    assert lower["links/b.txt"].islnk() and lower["links/b.txt"].linkname == "links/a.txt"
    assert lower["links/rel"].issym() and lower["links/abs"].linkname == "/links/a.txt"
    null = lower["special/null"]
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
    assert lower["special/fifo"].isfifo()
    assert lower["xattr/user.txt"].pax_headers["SCHILY.xattr.user.portside.test"] == "hello"
    cap = lower["xattr/cap-file"].pax_headers["SCHILY.xattr.security.capability"]
    assert cap.encode("utf-8", "surrogateescape") == images.CAP_NET_BIND_SERVICE_EP
    assert lower["usr/local/bin/suid"].mode == 0o4755
    assert lower["sticky"].mode == 0o1777
    assert (lower["home/user/owned.txt"].uid, lower["home/user/owned.txt"].gid) == (1000, 1000)
    assert "data/.wh.deleted.txt" in upper and "opaque/.wh..wh..opq" in upper
    assert ".wh.gone-dir" in upper
    link = upper["upper/link-to-lower.txt"]
    assert link.islnk() and link.linkname == "shared/original.txt"
    assert "shared/original.txt" not in upper  # the target lives only in the lower layer
    assert "upper/.wh.temp.txt" in top and "gone-dir/fresh.txt" in top


def test_multiplatform_index(fixture_layouts: dict[str, Path]) -> None:
    layout = fixture_layouts["multiplatform"]
    desc = images.tagged_descriptor(layout)
    assert desc["mediaType"] == images.MEDIA_INDEX
    index = images.read_json_blob(layout, desc["digest"])
    platforms = {}
    for manifest_desc in index["manifests"]:
        manifest = images.read_json_blob(layout, manifest_desc["digest"])
        config = images.read_json_blob(layout, manifest["config"]["digest"])
        platform = manifest_desc["platform"]
        assert config["architecture"] == platform["architecture"]
        assert config.get("variant") == platform.get("variant")
        platforms[(platform["os"], platform["architecture"], platform.get("variant"))] = manifest
    assert set(platforms) == {("linux", "amd64", None), ("linux", "arm64", "v8")}
    amd64, arm64 = platforms[("linux", "amd64", None)], platforms[("linux", "arm64", "v8")]
    assert amd64["layers"] == arm64["layers"] and amd64["config"] != arm64["config"]


def test_bad_compression_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown compression 'lz4'"):
        images.build_busybox_layout(tmp_path / "x", compression="lz4")


def test_check_tree_reports_differences(tmp_path: Path) -> None:
    """check_tree must be able to fail, or the storage tests that lean on it prove nothing."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "deleted.txt").write_text("still here")
    (tmp_path / "data" / ".wh.keep.txt").write_text("")
    problems = images.check_tree(tmp_path)
    assert "data/deleted.txt: present, should be gone" in problems
    assert "data/keep.txt: missing" in problems
    assert "data/.wh.keep.txt: whiteout left in tree" in problems
    assert images.check_tree(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: not a directory"]

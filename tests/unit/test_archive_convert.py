"""OCI <-> Docker schema 2 conversion of manifests and indexes."""

from __future__ import annotations

import json

import pytest

from portside.errors import InvalidArgument, UnsupportedMediaType
from portside.images import convert
from portside.oci import mediatypes as mt

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
D4 = "sha256:" + "4" * 64


def oci_manifest(*layer_types: str, **extra: object) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": t, "digest": D2, "size": 20} for t in layer_types],
        **extra,
    }
    return json.dumps(doc).encode()


def test_oci_to_docker_and_back_maps_every_media_type() -> None:
    raw = oci_manifest(mt.OCI_LAYER_GZIP, mt.OCI_LAYER_TAR, annotations={"a": "b"})
    docker = json.loads(convert.convert_manifest(raw, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST))
    assert docker["mediaType"] == mt.DOCKER_MANIFEST
    assert docker["config"] == {"mediaType": mt.DOCKER_CONFIG, "size": 10, "digest": D1}
    assert [x["mediaType"] for x in docker["layers"]] == [mt.DOCKER_LAYER_GZIP, mt.DOCKER_LAYER_TAR]
    assert "annotations" not in docker
    back = convert.convert_manifest(
        json.dumps(docker).encode(), mt.DOCKER_MANIFEST, mt.OCI_MANIFEST
    )
    doc = json.loads(back)
    assert doc["config"]["mediaType"] == mt.OCI_CONFIG
    assert [x["mediaType"] for x in doc["layers"]] == [mt.OCI_LAYER_GZIP, mt.OCI_LAYER_TAR]
    assert [x["digest"] for x in doc["layers"]] == [D2, D2]


def test_same_type_keeps_the_exact_bytes() -> None:
    raw = oci_manifest(mt.OCI_LAYER_ZSTD) + b"  "
    assert convert.convert_manifest(raw, mt.OCI_MANIFEST, mt.OCI_MANIFEST) is raw


def test_zstd_layers_cannot_become_docker() -> None:
    raw = oci_manifest(mt.OCI_LAYER_GZIP, mt.OCI_LAYER_ZSTD)
    with pytest.raises(UnsupportedMediaType, match=f"layer {D2} is zstd-compressed"):
        convert.convert_manifest(raw, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST)


def test_artifacts_cannot_become_docker() -> None:
    raw = oci_manifest(mt.OCI_LAYER_GZIP, artifactType="application/x-sbom")
    with pytest.raises(UnsupportedMediaType, match="artifact"):
        convert.convert_manifest(raw, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST)


@pytest.mark.parametrize("schema1", sorted(mt.SCHEMA1_TYPES))
def test_schema1_is_refused_everywhere(schema1: str) -> None:
    raw = json.dumps({"schemaVersion": 1, "fsLayers": []}).encode()
    with pytest.raises(UnsupportedMediaType, match="schema 1"):
        convert.convert_manifest(raw, schema1, mt.OCI_MANIFEST)
    with pytest.raises(UnsupportedMediaType, match="schema 1"):
        convert.choose_type(schema1, [mt.OCI_MANIFEST])
    with pytest.raises(UnsupportedMediaType, match="schema 1"):
        convert.format_type(schema1, "oci")


def test_index_conversion_repoints_converted_children() -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D1,
                "size": 5,
                "platform": {"os": "linux", "architecture": "amd64"},
                "annotations": {"x": "y"},
            },
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D2,
                "size": 6,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
        ],
    }
    raw = json.dumps(index).encode()
    children = {D1: (D3, 7, mt.DOCKER_MANIFEST), D2: (D4, 8, mt.DOCKER_MANIFEST)}
    out = json.loads(convert.convert_index(raw, mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, children))
    assert out["mediaType"] == mt.DOCKER_MANIFEST_LIST
    assert [(m["digest"], m["size"], m["mediaType"]) for m in out["manifests"]] == [
        (D3, 7, mt.DOCKER_MANIFEST),
        (D4, 8, mt.DOCKER_MANIFEST),
    ]
    assert out["manifests"][1]["platform"]["variant"] == "v8"
    assert "annotations" not in out["manifests"][0]
    with pytest.raises(UnsupportedMediaType, match="convert the children first"):
        convert.convert_index(raw, mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST)
    assert (
        convert.convert_index(raw, mt.OCI_INDEX, mt.OCI_INDEX, {D1: (D1, 5, mt.OCI_MANIFEST)})
        is raw
    )


def test_choose_type() -> None:
    oci_only = [mt.OCI_MANIFEST, mt.OCI_INDEX]
    assert convert.choose_type(mt.DOCKER_MANIFEST, oci_only) == mt.OCI_MANIFEST
    assert convert.choose_type(mt.DOCKER_MANIFEST_LIST, oci_only) == mt.OCI_INDEX
    assert convert.choose_type(mt.OCI_MANIFEST, oci_only) == mt.OCI_MANIFEST
    assert convert.choose_type(mt.OCI_MANIFEST, [], "docker") == mt.DOCKER_MANIFEST
    with pytest.raises(InvalidArgument, match="does not accept docker"):
        convert.choose_type(mt.OCI_MANIFEST, oci_only, "docker")
    with pytest.raises(InvalidArgument, match="unknown manifest format"):
        convert.choose_type(mt.OCI_MANIFEST, oci_only, "v1")
    with pytest.raises(UnsupportedMediaType, match="accepts no index"):
        convert.choose_type(mt.OCI_INDEX, [mt.DOCKER_MANIFEST, mt.OCI_MANIFEST])

"""Manifests, indexes, configs and descriptors: exact bytes kept, edits keep unknown fields."""

from __future__ import annotations

import json

import pytest

from portside.errors import InvalidDocument, UnsupportedMediaType
from portside.oci import mediatypes as mt
from portside.oci.config import ContainerConfig, ImageConfig
from portside.oci.descriptor import Descriptor
from portside.oci.digest import Digest, chain_id
from portside.oci.index import Index
from portside.oci.manifest import (
    Manifest,
    index_to_docker,
    index_to_oci,
    manifest_to_docker,
    manifest_to_oci,
    parse_manifest_or_index,
)
from portside.oci.platform import Platform

D1 = Digest.from_bytes(b"1")
D2 = Digest.from_bytes(b"2")
D3 = Digest.from_bytes(b"3")

# Deliberately odd formatting and key order, and fields we do not model.
OCI_MANIFEST_RAW = (
    b'{\n  "layers": [ {"size": 3, "digest": "' + D2.encode() + b'",\n'
    b'   "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "x-layer": [1,2]} ],\n'
    b'  "schemaVersion": 2,\n  "x-top": {"nested": null},\n'
    b'  "config": {"mediaType": "application/vnd.oci.image.config.v1+json",'
    b' "digest": "' + D1.encode() + b'", "size": 10}\n}\n'
)

DOCKER_MANIFEST_RAW = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG, "size": 10, "digest": D1},
        "layers": [
            {"mediaType": mt.DOCKER_LAYER_GZIP, "size": 3, "digest": D2},
            {
                "mediaType": mt.DOCKER_FOREIGN_LAYER,
                "size": 4,
                "digest": D3,
                "urls": ["https://example.com/l"],
            },
        ],
    },
    indent=3,
).encode()


def test_manifest_keeps_exact_bytes_and_digest() -> None:
    m = Manifest.parse(OCI_MANIFEST_RAW)
    assert m.raw == OCI_MANIFEST_RAW
    assert m.to_bytes() is OCI_MANIFEST_RAW or m.to_bytes() == OCI_MANIFEST_RAW
    assert m.digest == Digest.from_bytes(OCI_MANIFEST_RAW)
    assert m.size == len(OCI_MANIFEST_RAW)
    assert m.media_type is None
    assert m.content_type == mt.OCI_MANIFEST
    assert m.config.digest == D1
    assert m.layer_digests() == [D2]
    assert not m.is_modified()
    desc = m.descriptor()
    assert (desc.media_type, desc.digest, desc.size) == (mt.OCI_MANIFEST, m.digest, m.size)


def test_modified_manifest_keeps_unknown_fields_and_order() -> None:
    m = Manifest.parse(OCI_MANIFEST_RAW)
    m.annotations = {"a": "b"}
    assert m.is_modified()
    out = m.to_bytes()
    assert out != OCI_MANIFEST_RAW
    d = json.loads(out)
    assert list(d) == ["layers", "schemaVersion", "x-top", "config", "annotations"]
    assert d["x-top"] == {"nested": None}
    assert d["layers"][0]["x-layer"] == [1, 2]
    assert list(d["layers"][0]) == ["size", "digest", "mediaType", "x-layer"]
    assert m.digest == Digest.from_bytes(out)
    # Undoing the edit gives the original bytes back.
    m.annotations = None
    assert m.to_bytes() == OCI_MANIFEST_RAW


def test_in_place_edit_of_nested_value_is_noticed() -> None:
    m = Manifest.parse(OCI_MANIFEST_RAW)
    m.extra["x-top"]["nested"] = 1
    assert m.to_bytes() != OCI_MANIFEST_RAW
    m2 = Manifest.parse(OCI_MANIFEST_RAW)
    m2.layers[0].size = 4
    assert json.loads(m2.to_bytes())["layers"][0]["size"] == 4


def test_docker_manifest() -> None:
    m = Manifest.parse(DOCKER_MANIFEST_RAW, mt.DOCKER_MANIFEST)
    assert m.to_bytes() == DOCKER_MANIFEST_RAW
    assert m.is_docker and m.is_image
    assert m.layers[1].urls == ["https://example.com/l"]
    assert mt.is_nondistributable(m.layers[1].media_type)


@pytest.mark.parametrize(
    ("raw", "header"),
    [
        (b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}', None),
        (b'{"schemaVersion": 2, "config": {}, "layers": []}', mt.DOCKER_SCHEMA1_SIGNED),
        (
            b'{"schemaVersion": 1, "mediaType": "' + mt.DOCKER_SCHEMA1_MANIFEST.encode() + b'"}',
            None,
        ),
    ],
)
def test_schema1_refused(raw: bytes, header: str | None) -> None:
    for parse in (Manifest.parse, Index.parse, parse_manifest_or_index):
        with pytest.raises(UnsupportedMediaType, match="schema 1 manifests are not supported"):
            parse(raw, header)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"schemaVersion": NaN}', "not valid JSON"),
        (b'{"schemaVersion": 2, "layers": []}', "missing required field 'config'"),
        (b'{"schemaVersion": 3, "config": {}, "layers": []}', "schemaVersion must be 2"),
        (b'{"schemaVersion": true, "config": {}, "layers": []}', "schemaVersion must be 2"),
        (b'{"schemaVersion": 2, "manifests": []}', "index, not a manifest"),
    ],
)
def test_bad_manifests(raw: bytes, match: str) -> None:
    with pytest.raises(InvalidDocument, match=match):
        Manifest.parse(raw)


def _with_layer(layer: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 1},
            "layers": [layer],
        }
    ).encode()


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        ({"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:abc", "size": 1}, r"layers\[0\]"),
        ({"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": -1}, "invalid size"),
        ({"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": True}, "integer"),
        ({"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 1.5}, "integer"),
        ({"mediaType": mt.OCI_LAYER_GZIP, "digest": D2}, "missing required field 'size'"),
        ({"mediaType": "not a type", "digest": D2, "size": 1}, "invalid mediaType"),
        ({"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 1, "urls": "x"}, "list"),
        (
            {"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 1, "annotations": {"a": 1}},
            "object of strings",
        ),
        ({"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 1, "data": "!!"}, "base64"),
        ({"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 1, "data": "eA=="}, "digest"),
        ({"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 9, "data": "eA=="}, "size"),
    ],
)
def test_bad_descriptors_name_the_field(layer: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidDocument, match=match) as info:
        Manifest.parse(_with_layer(layer))
    assert "image manifest.layers[0]" in str(info.value)


def test_descriptor_embedded_data() -> None:
    d = Descriptor.for_bytes(mt.OCI_EMPTY_JSON, mt.EMPTY_JSON_DATA, embed=True)
    assert d.digest == mt.EMPTY_JSON_DIGEST
    assert d.size == mt.EMPTY_JSON_SIZE
    assert d.data_bytes() == b"{}"
    assert Descriptor.from_dict(d.to_dict()) == d
    assert d.annotation("x") is None


def test_header_and_field_disagree() -> None:
    with pytest.raises(InvalidDocument, match="differs"):
        Manifest.parse(DOCKER_MANIFEST_RAW, mt.OCI_MANIFEST)
    with pytest.raises(InvalidDocument, match="not a manifest type"):
        Manifest.parse(DOCKER_MANIFEST_RAW, mt.OCI_INDEX)
    # Unknown or generic headers are ignored.
    assert Manifest.parse(DOCKER_MANIFEST_RAW, "application/json").is_docker
    assert Manifest.parse(DOCKER_MANIFEST_RAW, mt.DOCKER_MANIFEST + "; charset=utf-8").is_docker


def test_header_supplies_type_when_field_missing() -> None:
    m = Manifest.parse(OCI_MANIFEST_RAW, mt.DOCKER_MANIFEST)
    assert m.media_type is None
    assert m.content_type == mt.DOCKER_MANIFEST
    assert m.copy().content_type == mt.DOCKER_MANIFEST


INDEX_RAW = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D1,
                "size": 1,
                "platform": {"architecture": "amd64", "os": "linux"},
            },
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D2,
                "size": 2,
                "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
            },
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D3,
                "size": 3,
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ],
        "x-extra": True,
    },
    separators=(",", ":"),
).encode()


def test_index_round_trip_and_select() -> None:
    idx = Index.parse(INDEX_RAW)
    assert idx.to_bytes() == INDEX_RAW
    assert idx.digest == Digest.from_bytes(INDEX_RAW)
    assert idx.select("linux/arm64").digest == D2
    assert idx.select("linux/amd64").digest == D1
    assert [str(p) for p in idx.platforms()] == ["linux/amd64", "linux/arm64/v8", "unknown/unknown"]
    idx.annotations = {"a": "b"}
    d = json.loads(idx.to_bytes())
    assert d["x-extra"] is True
    assert list(d)[-1] == "annotations"


def test_parse_manifest_or_index_detection() -> None:
    assert isinstance(parse_manifest_or_index(INDEX_RAW), Index)
    assert isinstance(parse_manifest_or_index(DOCKER_MANIFEST_RAW), Manifest)
    # No mediaType field: the header decides, then the shape.
    assert isinstance(parse_manifest_or_index(OCI_MANIFEST_RAW, mt.OCI_MANIFEST), Manifest)
    assert isinstance(parse_manifest_or_index(OCI_MANIFEST_RAW), Manifest)
    bare_index = b'{"schemaVersion":2,"manifests":[]}'
    got = parse_manifest_or_index(bare_index, mt.DOCKER_MANIFEST_LIST)
    assert isinstance(got, Index) and got.content_type == mt.DOCKER_MANIFEST_LIST
    assert isinstance(parse_manifest_or_index(bare_index, "application/octet-stream"), Index)
    assert parse_manifest_or_index(bare_index).to_bytes() == bare_index
    with pytest.raises(InvalidDocument, match="neither"):
        parse_manifest_or_index(b'{"schemaVersion":2}')
    with pytest.raises(UnsupportedMediaType, match="unsupported mediaType"):
        parse_manifest_or_index(b'{"schemaVersion":2,"mediaType":"text/plain"}')
    with pytest.raises(InvalidDocument, match="is an index"):
        Manifest.parse(b'{"schemaVersion":2,"mediaType":"' + mt.OCI_INDEX.encode() + b'"}')


def test_oci_to_docker_and_back() -> None:
    oci = Manifest.parse(OCI_MANIFEST_RAW)
    docker = manifest_to_docker(oci)
    assert docker.media_type == mt.DOCKER_MANIFEST
    assert docker.config.media_type == mt.DOCKER_CONFIG
    assert [layer.media_type for layer in docker.layers] == [mt.DOCKER_LAYER_GZIP]
    assert docker.config.digest == oci.config.digest
    assert "x-layer" not in docker.to_dict()["layers"][0]
    back = manifest_to_oci(Manifest.parse(docker.to_bytes()))
    assert back.media_type == mt.OCI_MANIFEST
    assert back.layers[0].media_type == mt.OCI_LAYER_GZIP
    assert back.config.media_type == mt.OCI_CONFIG
    d = manifest_to_oci(Manifest.parse(DOCKER_MANIFEST_RAW))
    assert d.layers[1].media_type == mt.OCI_LAYER_NONDIST_GZIP
    assert manifest_to_docker(d).layers[1].media_type == mt.DOCKER_FOREIGN_LAYER


def test_conversion_refusals() -> None:
    zstd = Manifest.parse(OCI_MANIFEST_RAW)
    zstd.layers[0].media_type = mt.OCI_LAYER_ZSTD
    with pytest.raises(UnsupportedMediaType, match="zstd"):
        manifest_to_docker(zstd)
    with_subject = Manifest.parse(OCI_MANIFEST_RAW)
    with_subject.subject = Descriptor(media_type=mt.OCI_MANIFEST, digest=D1, size=1)
    with pytest.raises(UnsupportedMediaType, match="subject"):
        manifest_to_docker(with_subject)
    artifact = Manifest.parse(OCI_MANIFEST_RAW)
    artifact.config.media_type = "application/vnd.example.thing+json"
    with pytest.raises(UnsupportedMediaType, match="no Docker equivalent"):
        manifest_to_docker(artifact)


def test_index_conversions() -> None:
    idx = Index.parse(INDEX_RAW)
    new_amd64 = Descriptor(media_type=mt.DOCKER_MANIFEST, digest=D3, size=30)
    docker = index_to_docker(idx, {D1: new_amd64})
    assert docker.media_type == mt.DOCKER_MANIFEST_LIST
    assert docker.manifests[0].digest == D3
    assert docker.manifests[0].platform is not None
    assert docker.manifests[0].platform.architecture == "amd64"
    assert [m.media_type for m in docker.manifests] == [mt.DOCKER_MANIFEST] * 3
    assert all(m.annotations is None for m in docker.manifests)
    back = index_to_oci(Index.parse(docker.to_bytes()))
    assert back.media_type == mt.OCI_INDEX
    assert [m.media_type for m in back.manifests] == [mt.OCI_MANIFEST] * 3
    assert index_to_oci(idx) == idx.copy()


DOCKER_CONFIG_RAW = json.dumps(
    {
        "architecture": "amd64",
        "config": {
            "Hostname": "",
            "Env": ["PATH=/bin", "A=1=2"],
            "Cmd": ["sh"],
            "Entrypoint": None,
            "OnBuild": None,
            "Labels": None,
            "Image": "sha256:abc",
        },
        "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop)"]},
        "created": "2023-05-19T20:19:22.751398522Z",
        "docker_version": "20.10.23",
        "history": [
            {"created": "2023-05-19T20:19:22Z", "created_by": "ADD file:x in / "},
            {"created": "2023-05-19T20:19:22Z", "created_by": "CMD", "empty_layer": True},
        ],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
    }
).encode()


def test_docker_config_round_trip_keeps_nulls_and_extras() -> None:
    cfg = ImageConfig.parse(DOCKER_CONFIG_RAW)
    assert cfg.to_bytes() == DOCKER_CONFIG_RAW
    assert cfg.id == Digest.from_bytes(DOCKER_CONFIG_RAW)
    assert cfg.config is not None
    assert cfg.config.entrypoint is None
    assert cfg.config.env_dict() == {"PATH": "/bin", "A": "1=2"}
    assert cfg.diff_ids == [D1, D2]
    assert cfg.chain_id == chain_id([D1, D2])
    assert cfg.platform().architecture == "amd64"
    cfg.config.cmd = ["bash"]
    d = json.loads(cfg.to_bytes())
    assert d["config"]["Entrypoint"] is None and "Entrypoint" in d["config"]
    assert d["config"]["Hostname"] == ""
    assert d["container_config"] == {"Cmd": ["/bin/sh", "-c", "#(nop)"]}
    assert d["docker_version"] == "20.10.23"
    assert d["config"]["Cmd"] == ["bash"]
    assert list(d) == list(json.loads(DOCKER_CONFIG_RAW))


def test_new_config() -> None:
    cfg = ImageConfig(architecture="arm64", os="linux", variant="v8")
    cc = cfg.ensure_config()
    assert isinstance(cc, ContainerConfig)
    cc.env = ["A=1"]
    cfg.rootfs.diff_ids.append(D1)
    d = json.loads(cfg.to_bytes())
    assert d == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "config": {"Env": ["A=1"]},
        "rootfs": {"type": "layers", "diff_ids": [D1]},
    }
    assert cfg.chain_id == D1
    assert ImageConfig(architecture="amd64", os="linux").chain_id is None


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}, "architecture"),
        ({"architecture": "amd64", "os": "linux"}, "rootfs"),
        ({"architecture": "a", "os": "l", "rootfs": {"type": "x", "diff_ids": []}}, "type"),
        ({"architecture": "a", "os": "l", "rootfs": {"type": "layers", "diff_ids": ["x"]}}, "diff"),
        ({"architecture": "a", "os": "l", "rootfs": {"type": "layers"}}, "diff_ids"),
        ({"architecture": "a", "os": "l", "rootfs": [], "config": {}}, "rootfs"),
        ({"architecture": 1, "os": "l", "rootfs": {"type": "layers", "diff_ids": []}}, "string"),
        (
            {
                "architecture": "a",
                "os": "l",
                "rootfs": {"type": "layers", "diff_ids": []},
                "config": {"Env": "A=1"},
            },
            "config.Env",
        ),
    ],
)
def test_bad_configs(doc: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidDocument, match=match):
        ImageConfig.parse(json.dumps(doc).encode())


def test_parse_wants_bytes() -> None:
    with pytest.raises(TypeError):
        Manifest.parse("{}")  # type: ignore[arg-type]


def test_platform_in_descriptor_keeps_extra_fields() -> None:
    raw = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": D1,
        "size": 1,
        "platform": {"architecture": "arm", "os": "linux", "variant": "v7", "x": 1},
    }
    d = Descriptor.from_dict(raw)
    assert isinstance(d.platform, Platform)
    assert d.to_dict() == raw


def test_layer_history_tolerates_mismatch() -> None:
    cfg = ImageConfig.parse(DOCKER_CONFIG_RAW)
    assert [(h.created_by, d) for h, d in cfg.layer_history()] == [
        ("ADD file:x in / ", D1),
        ("CMD", None),
    ]
    odd = ImageConfig.from_dict(
        {
            "architecture": "a",
            "os": "l",
            "rootfs": {"type": "layers", "diff_ids": [D1]},
            "history": [{"created_by": "a"}, {"created_by": "b"}],
        }
    )
    assert [d for _, d in odd.layer_history()] == [D1, None]


def test_add_layer() -> None:
    cfg = ImageConfig.parse(DOCKER_CONFIG_RAW)
    cfg.history = [cfg.history[0]] if cfg.history else None
    cfg.rootfs.diff_ids = [D1]
    cfg.add_layer(D3, created_by="portside commit", created="2024-01-01T00:00:00Z")
    cfg.add_layer(None, created_by="ENV A=1")
    assert cfg.diff_ids == [D1, D3]
    assert cfg.created == "2024-01-01T00:00:00Z"
    assert [d for _, d in cfg.layer_history()] == [D1, D3, None]
    d = json.loads(cfg.to_bytes())
    assert d["history"][-1] == {"created_by": "ENV A=1", "empty_layer": True}
    assert d["history"][-2] == {"created": "2024-01-01T00:00:00Z", "created_by": "portside commit"}
    assert cfg.id != Digest.from_bytes(DOCKER_CONFIG_RAW)

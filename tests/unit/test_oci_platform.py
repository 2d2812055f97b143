"""Platform spelling, matching and picking a manifest from an index; media type helpers."""

from __future__ import annotations

import platform as stdlib_platform

import pytest

from portside.errors import InvalidArgument, NotFound
from portside.oci import mediatypes as mt
from portside.oci.descriptor import Descriptor
from portside.oci.digest import Digest
from portside.oci.platform import (
    Platform,
    host_platform,
    normalize_arch,
    parse_platform,
    platform_matches,
    select_manifest,
)


@pytest.mark.parametrize(
    ("arch", "variant", "want"),
    [
        ("x86_64", None, ("amd64", None)),
        ("x86-64", None, ("amd64", None)),
        ("amd64", "v1", ("amd64", None)),
        ("amd64", "v3", ("amd64", "v3")),
        ("aarch64", None, ("arm64", "v8")),
        ("arm64", "8", ("arm64", "v8")),
        ("arm64", "v8.0", ("arm64", "v8")),
        ("ARM64", None, ("arm64", "v8")),
        ("armhf", None, ("arm", "v7")),
        ("armel", None, ("arm", "v6")),
        ("armv7l", None, ("arm", "v7")),
        ("arm", None, ("arm", "v7")),
        ("arm", "6", ("arm", "v6")),
        ("i686", None, ("386", None)),
        ("ppc64el", None, ("ppc64le", None)),
        ("s390x", None, ("s390x", None)),
        ("riscv64", None, ("riscv64", None)),
    ],
)
def test_normalize_arch(arch: str, variant: str | None, want: tuple[str, str | None]) -> None:
    assert normalize_arch(arch, variant) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("linux/arm64/v8", "linux/arm64/v8"),
        ("linux/arm64", "linux/arm64/v8"),
        ("linux/aarch64", "linux/arm64/v8"),
        ("linux/x86_64", "linux/amd64"),
        ("Linux/AMD64", "linux/amd64"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("arm64", "linux/arm64/v8"),
        ("macos/arm64", "darwin/arm64/v8"),
        ("windows/amd64", "windows/amd64"),
    ],
)
def test_parse_platform(text: str, want: str) -> None:
    assert str(parse_platform(text)) == want


@pytest.mark.parametrize("text", ["", "/", "linux/", "a/b/c/d", "linux//v7"])
def test_parse_platform_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid platform"):
        parse_platform(text)


def test_host_platform_matches_uname() -> None:
    host = host_platform()
    assert host.os == "linux"
    assert host.architecture == normalize_arch(stdlib_platform.machine())[0]
    assert platform_matches(host, host)


@pytest.mark.parametrize(
    ("wanted", "candidate", "ok"),
    [
        ("linux/amd64", "linux/amd64", True),
        ("linux/amd64", "linux/x86_64", True),
        ("linux/amd64", "linux/arm64", False),
        ("linux/amd64", "windows/amd64", False),
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm64/v8", "linux/aarch64", True),
        ("linux/arm/v7", "linux/arm/v6", True),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/arm", "linux/arm/v5", True),
        ("linux/amd64/v3", "linux/amd64", True),
        ("linux/amd64", "linux/amd64/v3", True),
    ],
)
def test_platform_matches(wanted: str, candidate: str, ok: bool) -> None:
    cand_parts = candidate.split("/")
    cand = Platform(
        os=cand_parts[0],
        architecture=cand_parts[1],
        variant=cand_parts[2] if len(cand_parts) > 2 else None,
    )
    assert platform_matches(parse_platform(wanted), cand) is ok


def _entry(n: int, os: str, arch: str, variant: str | None = None) -> Descriptor:
    return Descriptor(
        media_type=mt.OCI_MANIFEST,
        digest=Digest.from_bytes(str(n).encode()),
        size=n,
        platform=Platform(os=os, architecture=arch, variant=variant),
    )


ENTRIES = [
    _entry(1, "linux", "amd64"),
    _entry(2, "linux", "arm", "v5"),
    _entry(3, "linux", "arm", "v7"),
    _entry(4, "linux", "arm", "v6"),
    _entry(5, "linux", "arm64", "v8"),
    _entry(6, "unknown", "unknown"),
    _entry(7, "windows", "amd64"),
]


@pytest.mark.parametrize(
    ("wanted", "size"),
    [
        ("linux/amd64", 1),
        ("linux/arm/v7", 3),
        ("linux/arm/v6", 4),
        ("linux/arm/v5", 2),
        ("linux/arm", 3),
        ("linux/arm64", 5),
        ("linux/aarch64", 5),
        ("windows/amd64", 7),
    ],
)
def test_select_manifest_prefers_best(wanted: str, size: int) -> None:
    assert select_manifest(ENTRIES, wanted).size == size
    assert select_manifest(ENTRIES, parse_platform(wanted)).size == size


def test_select_manifest_older_variant_when_exact_is_missing() -> None:
    entries = [_entry(2, "linux", "arm", "v5"), _entry(4, "linux", "arm", "v6")]
    assert select_manifest(entries, "linux/arm/v7").size == 4


def test_select_manifest_not_found_names_platform() -> None:
    with pytest.raises(NotFound) as info:
        select_manifest(ENTRIES, "linux/s390x")
    msg = str(info.value)
    assert "linux/s390x" in msg
    assert "linux/amd64" in msg
    assert "unknown" not in msg
    with pytest.raises(NotFound, match="none"):
        select_manifest([], "linux/amd64")


def test_platform_key_and_str() -> None:
    p = Platform(os="linux", architecture="aarch64")
    assert p.key() == ("linux", "arm64", "v8")
    assert str(p) == "linux/aarch64"
    assert Platform.from_dict(p.to_dict()) == p


def test_mediatype_predicates() -> None:
    assert mt.is_manifest(mt.OCI_MANIFEST) and mt.is_manifest(mt.DOCKER_MANIFEST)
    assert mt.is_manifest(mt.OCI_MANIFEST + "; charset=utf-8")
    assert not mt.is_manifest(mt.OCI_INDEX)
    assert mt.is_index(mt.OCI_INDEX) and mt.is_index(mt.DOCKER_MANIFEST_LIST)
    assert mt.is_schema1(mt.DOCKER_SCHEMA1_SIGNED) and mt.is_schema1(mt.DOCKER_SCHEMA1_MANIFEST)
    assert not mt.is_schema1(mt.DOCKER_MANIFEST)
    assert mt.is_config(mt.OCI_CONFIG) and mt.is_config(mt.DOCKER_CONFIG)
    assert mt.is_docker(mt.DOCKER_CONFIG) and not mt.is_docker(mt.OCI_CONFIG)
    for layer_type, compression in [
        (mt.OCI_LAYER_TAR, None),
        (mt.OCI_LAYER_GZIP, "gzip"),
        (mt.OCI_LAYER_ZSTD, "zstd"),
        (mt.OCI_LAYER_NONDIST_TAR, None),
        (mt.OCI_LAYER_NONDIST_GZIP, "gzip"),
        (mt.OCI_LAYER_NONDIST_ZSTD, "zstd"),
        (mt.DOCKER_LAYER_GZIP, "gzip"),
        (mt.DOCKER_LAYER_TAR, None),
        (mt.DOCKER_FOREIGN_LAYER, "gzip"),
        ("application/vnd.oci.image.layer.v2.tar+zstd", "zstd"),
    ]:
        assert mt.is_layer(layer_type), layer_type
        assert mt.layer_compression(layer_type) == compression, layer_type
    assert not mt.is_layer(mt.OCI_CONFIG)
    with pytest.raises(ValueError):
        mt.layer_compression(mt.OCI_CONFIG)
    assert mt.is_nondistributable(mt.DOCKER_FOREIGN_LAYER)
    assert not mt.is_nondistributable(mt.OCI_LAYER_GZIP)
    assert mt.layer_type("zstd") == mt.OCI_LAYER_ZSTD
    assert mt.layer_type(None, docker=True) == mt.DOCKER_LAYER_TAR
    assert mt.layer_type("gzip", docker=True) == mt.DOCKER_LAYER_GZIP
    with pytest.raises(ValueError):
        mt.layer_type("zstd", docker=True)
    with pytest.raises(ValueError):
        mt.layer_type("bzip2")
    assert Digest.from_bytes(mt.EMPTY_JSON_DATA) == mt.EMPTY_JSON_DIGEST

"""Image manifests (OCI image manifest and Docker v2 schema 2), kind detection, and
conversion between the OCI and Docker media types.

Docker schema 1 is refused: it has no content-addressable config and signs a
re-serialised form, which this engine does not implement.
"""

from __future__ import annotations

from typing import Any, Self

from portside.errors import InvalidDocument, UnsupportedMediaType
from portside.oci import mediatypes as mt
from portside.oci._json import Document, jfield
from portside.oci.descriptor import Descriptor
from portside.oci.digest import Digest
from portside.oci.distributable import Distributable, header_type, refuse_schema1
from portside.oci.index import Index

__all__ = [
    "Manifest",
    "index_to_docker",
    "index_to_oci",
    "manifest_to_docker",
    "manifest_to_oci",
    "parse_manifest_or_index",
]


class Manifest(Distributable):
    """One image (or artifact): a config blob and an ordered list of layers."""

    schema_version: int = jfield("schemaVersion", "int", always=True, default=2)
    media_type: str | None = jfield("mediaType", "str", default=None)
    artifact_type: str | None = jfield("artifactType", "str", default=None)
    config: Descriptor = jfield("config", "model", model=Descriptor)
    layers: list[Descriptor] = jfield(
        "layers", "models", model=Descriptor, always=True, required=True, default_factory=list
    )
    subject: Descriptor | None = jfield("subject", "model", model=Descriptor, default=None)
    annotations: dict[str, str] | None = jfield("annotations", "strmap", default=None)

    KIND = "a manifest"
    OTHER_KIND = "an index"
    DEFAULT_TYPE = mt.OCI_MANIFEST
    DOCKER_TYPE = mt.DOCKER_MANIFEST

    OWN_TYPES = mt.MANIFEST_TYPES
    OTHER_TYPES = mt.INDEX_TYPES

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> Self:
        """Parse manifest bytes; `media_type` is the Content-Type it was served with, if any."""
        obj, source = cls._parse_checked(raw, media_type)
        return obj._finish_parse(raw, media_type, source)

    @classmethod
    def _check_shape(cls, d: dict[str, Any], what: str) -> None:
        if "manifests" in d and "config" not in d:
            raise InvalidDocument(f"{what}: this is an image index, not a manifest")

    @property
    def is_image(self) -> bool:
        """True if the config is an image config (not an artifact's)."""
        return mt.is_config(self.config.media_type)

    def layer_digests(self) -> list[Digest]:
        return [layer.digest for layer in self.layers]


def parse_manifest_or_index(raw: bytes, media_type_header: str | None = None) -> Manifest | Index:
    """Decide from the mediaType field (else the header, else the shape) and parse."""
    d, _ = Document._load(raw, "manifest")
    refuse_schema1(d, media_type_header, "manifest")
    field_type = d.get("mediaType")
    kind: str | None = None
    for candidate in (field_type if isinstance(field_type, str) else None, media_type_header):
        if candidate is None:
            continue
        if mt.is_manifest(candidate):
            kind = "manifest"
        elif mt.is_index(candidate):
            kind = "index"
        if kind:
            break
    if kind is None:
        if isinstance(field_type, str):
            raise UnsupportedMediaType(f"manifest: unsupported mediaType {field_type!r}")
        if "manifests" in d:
            kind = "index"
        elif "config" in d or "layers" in d:
            kind = "manifest"
        else:
            raise InvalidDocument("manifest: neither an image manifest nor an index")
    header = media_type_header if header_type(media_type_header) else None
    if kind == "index":
        if header is not None and not mt.is_index(header):
            header = None
        return Index.parse(raw, header)
    if header is not None and not mt.is_manifest(header):
        header = None
    return Manifest.parse(raw, header)


_TO_DOCKER_LAYER = {
    mt.OCI_LAYER_GZIP: mt.DOCKER_LAYER_GZIP,
    mt.OCI_LAYER_TAR: mt.DOCKER_LAYER_TAR,
    mt.OCI_LAYER_NONDIST_GZIP: mt.DOCKER_FOREIGN_LAYER,
}
_TO_OCI_LAYER = {
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    mt.DOCKER_LAYER_TAR: mt.OCI_LAYER_TAR,
    mt.DOCKER_FOREIGN_LAYER: mt.OCI_LAYER_NONDIST_GZIP,
}


def _plain(desc: Descriptor, media_type: str) -> Descriptor:
    """A descriptor with Docker's fields only (no annotations/data/artifactType)."""
    return Descriptor(
        media_type=media_type,
        digest=desc.digest,
        size=desc.size,
        urls=list(desc.urls) if desc.urls else None,
        platform=desc.platform.copy() if desc.platform is not None else None,
    )


def manifest_to_docker(m: Manifest) -> Manifest:
    """The Docker v2 schema 2 form of an OCI image manifest (annotations are dropped)."""
    if m.is_docker:
        return m.copy()
    if m.config.media_type != mt.OCI_CONFIG:
        raise UnsupportedMediaType(
            f"image manifest: config type {m.config.media_type} has no Docker equivalent"
        )
    if m.subject is not None:
        raise UnsupportedMediaType("image manifest: Docker schema 2 cannot carry a subject")
    layers = []
    for layer in m.layers:
        docker_type = _TO_DOCKER_LAYER.get(mt.base(layer.media_type))
        if docker_type is None:
            raise UnsupportedMediaType(
                f"image manifest: layer {layer.digest} ({layer.media_type}) "
                "cannot be expressed in Docker schema 2 (zstd or unknown compression)"
            )
        layers.append(_plain(layer, docker_type))
    return Manifest(
        schema_version=2,
        media_type=mt.DOCKER_MANIFEST,
        config=_plain(m.config, mt.DOCKER_CONFIG),
        layers=layers,
    )


def manifest_to_oci(m: Manifest) -> Manifest:
    """The OCI form of a Docker v2 schema 2 manifest."""
    if not m.is_docker:
        return m.copy()
    if m.config.media_type != mt.DOCKER_CONFIG:
        raise UnsupportedMediaType(
            f"image manifest: config type {m.config.media_type} has no OCI image equivalent"
        )
    layers = []
    for layer in m.layers:
        oci_type = _TO_OCI_LAYER.get(mt.base(layer.media_type))
        if oci_type is None:
            raise UnsupportedMediaType(
                f"image manifest: layer {layer.digest} has unknown type {layer.media_type}"
            )
        layers.append(layer.copy().replace(media_type=oci_type))
    return Manifest(
        schema_version=2,
        media_type=mt.OCI_MANIFEST,
        config=m.config.copy().replace(media_type=mt.OCI_CONFIG),
        layers=layers,
        annotations=dict(m.annotations) if m.annotations else None,
    )


def _convert_entries(
    index: Index,
    converted: dict[Digest, Descriptor] | None,
    type_map: dict[str, str],
    docker: bool,
) -> list[Descriptor]:
    out = []
    for entry in index.manifests:
        new = (converted or {}).get(entry.digest)
        if new is None:
            target = type_map.get(mt.base(entry.media_type))
            if target is None:
                raise UnsupportedMediaType(
                    f"image index: entry {entry.digest} ({entry.media_type}) cannot be converted"
                )
            new = entry.copy()
            new.media_type = target
        else:
            new = new.copy()
        if new.platform is None and entry.platform is not None:
            new.platform = entry.platform.copy()
        if docker:
            new = _plain(new, new.media_type)
        out.append(new)
    return out


def index_to_docker(index: Index, converted: dict[Digest, Descriptor] | None = None) -> Index:
    """The Docker manifest list form; `converted` maps old entry digests to the new
    descriptors of their converted manifests (their digests change with their type)."""
    if index.is_docker:
        return index.copy()
    if index.subject is not None:
        raise UnsupportedMediaType("image index: a Docker manifest list cannot carry a subject")
    type_map = {mt.OCI_MANIFEST: mt.DOCKER_MANIFEST, mt.OCI_INDEX: mt.DOCKER_MANIFEST_LIST}
    return Index(
        schema_version=2,
        media_type=mt.DOCKER_MANIFEST_LIST,
        manifests=_convert_entries(index, converted, type_map, docker=True),
    )


def index_to_oci(index: Index, converted: dict[Digest, Descriptor] | None = None) -> Index:
    """The OCI image index form of a Docker manifest list (see `index_to_docker`)."""
    if not index.is_docker:
        return index.copy()
    type_map = {mt.DOCKER_MANIFEST: mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST: mt.OCI_INDEX}
    return Index(
        schema_version=2,
        media_type=mt.OCI_INDEX,
        manifests=_convert_entries(index, converted, type_map, docker=False),
        annotations=dict(index.annotations) if index.annotations else None,
    )

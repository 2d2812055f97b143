"""Image indexes: the OCI image index and the Docker manifest list (same shape)."""

from __future__ import annotations

from typing import Any, Self

from portside.errors import InvalidDocument, UnsupportedMediaType
from portside.oci import mediatypes as mt
from portside.oci._json import Document, jfield
from portside.oci.descriptor import MEDIA_TYPE_RE, Descriptor
from portside.oci.platform import Platform, select_manifest

__all__ = ["Index", "check_schema_version", "refuse_schema1"]


def refuse_schema1(d: dict[str, Any], header: str | None, what: str) -> None:
    """Raise UnsupportedMediaType for anything that looks like Docker schema 1."""
    field_type = d.get("mediaType") if isinstance(d.get("mediaType"), str) else None
    if (
        (header is not None and mt.is_schema1(header))
        or (field_type is not None and mt.is_schema1(field_type))
        or (d.get("schemaVersion") == 1 and not isinstance(d.get("schemaVersion"), bool))
        or "fsLayers" in d
    ):
        raise UnsupportedMediaType(
            f"{what}: Docker schema 1 manifests are not supported "
            "(re-push the image with a current client to get schema 2 or OCI)"
        )


def check_schema_version(d: dict[str, Any], what: str) -> None:
    v = d.get("schemaVersion")
    if v != 2 or isinstance(v, bool):
        raise InvalidDocument(f"{what}: schemaVersion must be 2, got {v!r}")


def header_type(header: str | None) -> str | None:
    """The media type a Content-Type header names, if it is one we know."""
    if header is None:
        return None
    base = mt.base(header)
    known = mt.MANIFEST_TYPES | mt.INDEX_TYPES | mt.SCHEMA1_TYPES
    return base if base in known else None


class Index(Document):
    """An OCI image index or Docker manifest list; `.raw` holds the parsed bytes."""

    schema_version: int = jfield("schemaVersion", "int", always=True, default=2)
    media_type: str | None = jfield("mediaType", "str", default=None)
    artifact_type: str | None = jfield("artifactType", "str", default=None)
    manifests: list[Descriptor] = jfield(
        "manifests", "models", model=Descriptor, always=True, required=True, default_factory=list
    )
    subject: Descriptor | None = jfield("subject", "model", model=Descriptor, default=None)
    annotations: dict[str, str] | None = jfield("annotations", "strmap", default=None)

    @classmethod
    def _what(cls) -> str:
        return "image index"

    def _validate(self, where: str) -> None:
        if self.schema_version != 2:
            raise InvalidDocument(f"{where}: schemaVersion must be 2, got {self.schema_version}")
        if self.media_type is not None and not mt.is_index(self.media_type):
            if mt.is_manifest(self.media_type):
                raise InvalidDocument(f"{where}: mediaType {self.media_type} is a manifest")
            raise UnsupportedMediaType(f"{where}: unsupported mediaType {self.media_type!r}")
        if self.artifact_type is not None and MEDIA_TYPE_RE.fullmatch(self.artifact_type) is None:
            raise InvalidDocument(f"{where}: invalid artifactType {self.artifact_type!r}")

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> Self:
        what = cls._what()
        d, source = cls._load(raw, what)
        refuse_schema1(d, media_type, what)
        check_schema_version(d, what)
        header = header_type(media_type)
        field_type = d.get("mediaType")
        if header is not None and not mt.is_index(header):
            raise InvalidDocument(f"{what}: served as {header}, which is not an index type")
        if header is not None and isinstance(field_type, str) and mt.base(field_type) != header:
            raise InvalidDocument(f"{what}: mediaType {field_type} differs from {header}")
        if isinstance(field_type, str) and mt.is_manifest(field_type):
            raise InvalidDocument(f"{what}: mediaType {field_type} is a manifest, not an index")
        obj = cls.from_dict(d)
        obj.header_type = header
        obj._attach(raw, source)
        return obj

    @property
    def content_type(self) -> str:
        """The media type to serve/describe this document as."""
        return self.media_type or self.header_type or mt.OCI_INDEX

    @property
    def is_docker(self) -> bool:
        return self.content_type == mt.DOCKER_MANIFEST_LIST

    def descriptor(self, **kwargs: Any) -> Descriptor:
        return Descriptor(
            media_type=self.content_type, digest=self.digest, size=self.size, **kwargs
        )

    def select(self, wanted: Platform | str) -> Descriptor:
        """The best manifest for `wanted` (NotFound names the platform)."""
        return select_manifest(self, wanted)

    def platforms(self) -> list[Platform]:
        return [d.platform for d in self.manifests if d.platform is not None]

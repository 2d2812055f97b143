"""What image manifests and indexes share: schema version 2, schema 1 refused, and a
mediaType field that must agree with the Content-Type the document was served as.

Each kind names its own types and the other kind's; the checks are written once here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from portside.errors import InvalidDocument, UnsupportedMediaType
from portside.oci import mediatypes as mt
from portside.oci._json import Document
from portside.oci.descriptor import MEDIA_TYPE_RE, Descriptor

__all__ = ["Distributable", "check_schema_version", "header_type", "refuse_schema1"]


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


class Distributable(Document):
    """Base of Manifest and Index (fields stay on each class: their order is the JSON's)."""

    KIND: ClassVar[str]  # "a manifest" or "an index", for messages
    OTHER_KIND: ClassVar[str]
    DEFAULT_TYPE: ClassVar[str]  # served as this when neither field nor header says
    DOCKER_TYPE: ClassVar[str]
    OWN_TYPES: ClassVar[frozenset[str]]  # this kind's media types, OCI and Docker
    OTHER_TYPES: ClassVar[frozenset[str]]  # the other kind's

    schema_version: int
    media_type: str | None
    artifact_type: str | None

    @classmethod
    def _what(cls) -> str:
        return f"image {cls.KIND.split()[-1]}"

    @classmethod
    def _is_own(cls, media_type: str) -> bool:
        return mt.base(media_type) in cls.OWN_TYPES

    @classmethod
    def _is_other(cls, media_type: str) -> bool:
        return mt.base(media_type) in cls.OTHER_TYPES

    def _validate(self, where: str) -> None:
        if self.schema_version != 2:
            raise InvalidDocument(f"{where}: schemaVersion must be 2, got {self.schema_version}")
        if self.media_type is not None and not self._is_own(self.media_type):
            if self._is_other(self.media_type):
                raise InvalidDocument(f"{where}: mediaType {self.media_type} is {self.OTHER_KIND}")
            raise UnsupportedMediaType(f"{where}: unsupported mediaType {self.media_type!r}")
        if self.artifact_type is not None and MEDIA_TYPE_RE.fullmatch(self.artifact_type) is None:
            raise InvalidDocument(f"{where}: invalid artifactType {self.artifact_type!r}")

    @classmethod
    def _parse_checked(cls, raw: bytes, media_type: str | None) -> tuple[Self, dict[str, Any]]:
        """Decode `raw`, refuse what is not this kind, and keep the exact bytes."""
        what = cls._what()
        d, source = cls._load(raw, what)
        refuse_schema1(d, media_type, what)
        check_schema_version(d, what)
        header = header_type(media_type)
        field_type = d.get("mediaType")
        if header is not None and not cls._is_own(header):
            raise InvalidDocument(f"{what}: served as {header}, which is not {cls.KIND} type")
        if header is not None and isinstance(field_type, str) and mt.base(field_type) != header:
            raise InvalidDocument(f"{what}: mediaType {field_type} differs from {header}")
        if isinstance(field_type, str) and cls._is_other(field_type):
            raise InvalidDocument(
                f"{what}: mediaType {field_type} is {cls.OTHER_KIND}, not {cls.KIND}"
            )
        cls._check_shape(d, what)
        return cls.from_dict(d), source

    @classmethod
    def _check_shape(cls, d: dict[str, Any], what: str) -> None:
        """A kind's own refusal of the other kind's shape, before decoding fields."""

    def _finish_parse(self, raw: bytes, media_type: str | None, source: dict[str, Any]) -> Self:
        self.header_type = header_type(media_type)
        self._attach(raw, source)
        return self

    @property
    def content_type(self) -> str:
        """The media type to serve/describe this document as."""
        return self.media_type or self.header_type or self.DEFAULT_TYPE

    @property
    def is_docker(self) -> bool:
        return self.content_type == self.DOCKER_TYPE

    def descriptor(self, **kwargs: Any) -> Descriptor:
        return Descriptor(
            media_type=self.content_type, digest=self.digest, size=self.size, **kwargs
        )

"""Content descriptors: (mediaType, digest, size) plus optional urls, annotations, platform."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from portside.errors import InvalidDocument
from portside.oci._json import JSONModel, jfield
from portside.oci.digest import Digest
from portside.oci.platform import Platform

__all__ = ["MEDIA_TYPE_RE", "Descriptor"]

# RFC 6838 type/subtype as the image-spec schema states it.
MEDIA_TYPE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
_INT64_MAX = 2**63 - 1


class Descriptor(JSONModel):
    """A pointer to content; digest and size are checked on decode."""

    media_type: str = jfield("mediaType", "str")
    digest: Digest = jfield("digest", "digest")
    size: int = jfield("size", "int")
    urls: list[str] | None = jfield("urls", "strlist", default=None)
    annotations: dict[str, str] | None = jfield("annotations", "strmap", default=None)
    data: str | None = jfield("data", "str", default=None)
    platform: Platform | None = jfield("platform", "model", model=Platform, default=None)
    artifact_type: str | None = jfield("artifactType", "str", default=None)

    def __post_init__(self) -> None:
        # Built in code: accept a plain string digest but store a checked Digest.
        if not isinstance(self.digest, Digest):
            self.digest = Digest.parse(self.digest)

    @classmethod
    def _what(cls) -> str:
        return "descriptor"

    def _validate(self, where: str) -> None:
        if MEDIA_TYPE_RE.fullmatch(self.media_type) is None:
            raise InvalidDocument(f"{where}: invalid mediaType {self.media_type!r}")
        if not 0 <= self.size <= _INT64_MAX:
            raise InvalidDocument(f"{where}: invalid size {self.size}")
        if self.artifact_type is not None and MEDIA_TYPE_RE.fullmatch(self.artifact_type) is None:
            raise InvalidDocument(f"{where}: invalid artifactType {self.artifact_type!r}")
        if self.data is not None:
            try:
                blob = base64.b64decode(self.data, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidDocument(f"{where}: data is not valid base64") from None
            if len(blob) != self.size:
                raise InvalidDocument(f"{where}: data has {len(blob)} bytes, size says {self.size}")
            if Digest.from_bytes(blob, self.digest.algorithm) != self.digest:
                raise InvalidDocument(f"{where}: data does not match digest {self.digest}")

    @classmethod
    def for_bytes(
        cls, media_type: str, blob: bytes, *, embed: bool = False, **kwargs: Any
    ) -> Descriptor:
        """The descriptor of `blob` (optionally embedding it as `data`)."""
        return cls(
            media_type=media_type,
            digest=Digest.from_bytes(blob),
            size=len(blob),
            data=base64.b64encode(blob).decode() if embed else None,
            **kwargs,
        )

    def data_bytes(self) -> bytes | None:
        return None if self.data is None else base64.b64decode(self.data)

    def annotation(self, key: str) -> str | None:
        return (self.annotations or {}).get(key)

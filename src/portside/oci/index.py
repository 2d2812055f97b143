"""Image indexes: the OCI image index and the Docker manifest list (same shape)."""

from __future__ import annotations

from typing import Self

from portside.oci import mediatypes as mt
from portside.oci._json import jfield
from portside.oci.descriptor import Descriptor
from portside.oci.distributable import Distributable, check_schema_version, refuse_schema1
from portside.oci.platform import Platform, select_manifest

__all__ = ["Index", "check_schema_version", "refuse_schema1"]  # the helpers live in distributable


class Index(Distributable):
    """An OCI image index or Docker manifest list; `.raw` holds the parsed bytes."""

    schema_version: int = jfield("schemaVersion", "int", always=True, default=2)
    media_type: str | None = jfield("mediaType", "str", default=None)
    artifact_type: str | None = jfield("artifactType", "str", default=None)
    manifests: list[Descriptor] = jfield(
        "manifests", "models", model=Descriptor, always=True, required=True, default_factory=list
    )
    subject: Descriptor | None = jfield("subject", "model", model=Descriptor, default=None)
    annotations: dict[str, str] | None = jfield("annotations", "strmap", default=None)

    KIND = "an index"
    OTHER_KIND = "a manifest"
    DEFAULT_TYPE = mt.OCI_INDEX
    DOCKER_TYPE = mt.DOCKER_MANIFEST_LIST

    OWN_TYPES = mt.INDEX_TYPES
    OTHER_TYPES = mt.MANIFEST_TYPES

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> Self:
        obj, source = cls._parse_checked(raw, media_type)
        return obj._finish_parse(raw, media_type, source)

    def select(self, wanted: Platform | str) -> Descriptor:
        """The best manifest for `wanted` (NotFound names the platform)."""
        return select_manifest(self, wanted)

    def platforms(self) -> list[Platform]:
        return [d.platform for d in self.manifests if d.platform is not None]

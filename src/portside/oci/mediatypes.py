"""Media types of OCI and Docker image documents and layers, and predicates over them.

Kept as plain string constants so documents can carry them through unchanged;
the predicates let callers ask "is this a manifest?" without listing both worlds.
"""

from __future__ import annotations

# OCI image-spec
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY_JSON = "application/vnd.oci.empty.v1+json"
# The empty JSON blob `{}` that image-spec 1.1 artifacts use as config/layer.
EMPTY_JSON_DATA = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
EMPTY_JSON_SIZE = 2

# Docker image manifest v2
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED})

_LAYER_COMPRESSION: dict[str, str | None] = {
    OCI_LAYER_TAR: None,
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST_TAR: None,
    OCI_LAYER_NONDIST_GZIP: "gzip",
    OCI_LAYER_NONDIST_ZSTD: "zstd",
    DOCKER_LAYER_TAR: None,
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER: "gzip",
}
LAYER_TYPES = frozenset(_LAYER_COMPRESSION)
NONDISTRIBUTABLE_TYPES = frozenset(
    {OCI_LAYER_NONDIST_TAR, OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD, DOCKER_FOREIGN_LAYER}
)

# What to send in a registry's Accept header when resolving a tag.
MANIFEST_ACCEPT = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)


def base(media_type: str) -> str:
    """The media type without parameters (`; charset=...`) and in lower case."""
    return media_type.split(";", 1)[0].strip().lower()


def is_manifest(media_type: str) -> bool:
    return base(media_type) in MANIFEST_TYPES


def is_index(media_type: str) -> bool:
    return base(media_type) in INDEX_TYPES


def is_config(media_type: str) -> bool:
    return base(media_type) in CONFIG_TYPES


def is_schema1(media_type: str) -> bool:
    return base(media_type) in SCHEMA1_TYPES


def is_docker(media_type: str) -> bool:
    return base(media_type).startswith("application/vnd.docker.")


def is_layer(media_type: str) -> bool:
    """Known layer types, plus any `+gzip`/`+zstd`/`.tar` OCI-style layer suffix."""
    mt = base(media_type)
    if mt in LAYER_TYPES:
        return True
    return mt.startswith("application/vnd.oci.image.layer.") and (
        mt.endswith(".tar") or mt.endswith(".tar+gzip") or mt.endswith(".tar+zstd")
    )


def is_nondistributable(media_type: str) -> bool:
    return base(media_type) in NONDISTRIBUTABLE_TYPES


def layer_compression(media_type: str) -> str | None:
    """ "gzip", "zstd" or None (plain tar); raises ValueError for a non-layer type."""
    mt = base(media_type)
    if mt in _LAYER_COMPRESSION:
        return _LAYER_COMPRESSION[mt]
    if is_layer(mt):
        if mt.endswith("+gzip"):
            return "gzip"
        if mt.endswith("+zstd"):
            return "zstd"
        return None
    raise ValueError(f"{media_type!r} is not a layer media type")


def layer_type(compression: str | None, *, docker: bool = False) -> str:
    """The media type for a layer written with `compression` in OCI or Docker form."""
    if docker:
        if compression == "gzip":
            return DOCKER_LAYER_GZIP
        if compression is None:
            return DOCKER_LAYER_TAR
        raise ValueError(f"Docker schema 2 has no layer media type for {compression} compression")
    if compression == "gzip":
        return OCI_LAYER_GZIP
    if compression == "zstd":
        return OCI_LAYER_ZSTD
    if compression is None:
        return OCI_LAYER_TAR
    raise ValueError(f"unknown layer compression {compression!r}")

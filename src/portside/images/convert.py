"""OCI <-> Docker v2 schema 2 conversion of manifests and indexes (manifest lists).

Used only when a destination cannot take the source's format (an OCI layout
takes no Docker manifest, a user asks `--format docker`): conversion changes a
manifest's bytes and so its digest, while config and layer blobs stay byte for
byte the same. What cannot be expressed in the target format (zstd layers or
artifacts in Docker form, schema 1 anywhere) fails with one line naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from portside.errors import InvalidArgument, InvalidDocument, UnsupportedMediaType
from portside.oci import mediatypes as mt

__all__ = [
    "FORMATS",
    "ChildMap",
    "choose_type",
    "convert",
    "convert_index",
    "convert_manifest",
    "format_type",
    "refuse_schema1",
]

FORMATS = ("oci", "docker")

# old child digest -> (new digest, new size, new media type)
ChildMap = Mapping[str, tuple[str, int, str]]

_LAYER_TO_DOCKER = {
    mt.OCI_LAYER_GZIP: mt.DOCKER_LAYER_GZIP,
    mt.OCI_LAYER_TAR: mt.DOCKER_LAYER_TAR,
    mt.OCI_LAYER_NONDIST_GZIP: mt.DOCKER_FOREIGN_LAYER,
    mt.DOCKER_LAYER_GZIP: mt.DOCKER_LAYER_GZIP,
    mt.DOCKER_LAYER_TAR: mt.DOCKER_LAYER_TAR,
    mt.DOCKER_FOREIGN_LAYER: mt.DOCKER_FOREIGN_LAYER,
}
_LAYER_TO_OCI = {
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    mt.DOCKER_LAYER_TAR: mt.OCI_LAYER_TAR,
    mt.DOCKER_FOREIGN_LAYER: mt.OCI_LAYER_NONDIST_GZIP,
}
_KIND_TYPES = {
    ("manifest", "oci"): mt.OCI_MANIFEST,
    ("manifest", "docker"): mt.DOCKER_MANIFEST,
    ("index", "oci"): mt.OCI_INDEX,
    ("index", "docker"): mt.DOCKER_MANIFEST_LIST,
}


def refuse_schema1(media_type: str, what: str = "manifest") -> None:
    if mt.is_schema1(media_type):
        raise UnsupportedMediaType(
            f"{what}: Docker schema 1 manifests are not supported ({mt.base(media_type)}); "
            "convert the image to schema 2 or OCI with a newer tool"
        )


def _kind(media_type: str, what: str) -> str:
    refuse_schema1(media_type, what)
    if mt.is_manifest(media_type):
        return "manifest"
    if mt.is_index(media_type):
        return "index"
    raise UnsupportedMediaType(f"{what}: unsupported manifest media type {media_type!r}")


def format_type(media_type: str, fmt: str) -> str:
    """The media type `media_type` becomes in format `fmt` ("oci" or "docker")."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown manifest format {fmt!r} (use oci or docker)")
    return _KIND_TYPES[(_kind(media_type, "manifest"), fmt)]


def choose_type(media_type: str, supported: Sequence[str], fmt: str | None = None) -> str:
    """The type to write: `fmt`'s if asked, else the source's if accepted, else the
    first accepted one of the same kind (manifest or index)."""
    media_type = mt.base(media_type)
    kind = _kind(media_type, "manifest")
    if fmt is not None:
        wanted = format_type(media_type, fmt)
        if supported and wanted not in supported:
            raise InvalidArgument(f"the destination does not accept {fmt} {kind}s ({wanted})")
        return wanted
    if not supported or media_type in supported:
        return media_type
    for candidate in supported:
        if _kind(candidate, "destination") == kind:
            return candidate
    raise UnsupportedMediaType(f"the destination accepts no {kind} (it takes {list(supported)})")


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise InvalidDocument(f"{what}: not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise InvalidDocument(f"{what}: not a JSON object")
    return doc


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _descriptor(src: Any, media_type: str, keep_annotations: bool, what: str) -> dict[str, Any]:
    if not isinstance(src, dict) or not isinstance(src.get("digest"), str):
        raise InvalidDocument(f"{what}: malformed descriptor")
    out: dict[str, Any] = {
        "mediaType": media_type,
        "size": src.get("size"),
        "digest": src["digest"],
    }
    if src.get("urls"):
        out["urls"] = src["urls"]
    if keep_annotations and src.get("annotations"):
        out["annotations"] = src["annotations"]
    if src.get("platform"):
        out["platform"] = src["platform"]
    return out


def convert_manifest(raw: bytes, media_type: str, target: str, what: str = "manifest") -> bytes:
    """Re-express an image manifest in `target` (OCI_MANIFEST or DOCKER_MANIFEST)."""
    media_type, target = mt.base(media_type), mt.base(target)
    if _kind(media_type, what) != "manifest" or _kind(target, what) != "manifest":
        raise InvalidArgument(f"{what}: cannot convert {media_type} to {target}")
    if media_type == target:
        return raw
    doc = _load(raw, what)
    if doc.get("schemaVersion") != 2:
        raise InvalidDocument(f"{what}: schemaVersion {doc.get('schemaVersion')!r} is not 2")
    config = doc.get("config")
    layers = doc.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise InvalidDocument(f"{what}: no config or layers")
    to_docker = target == mt.DOCKER_MANIFEST
    if to_docker:
        if doc.get("artifactType") or doc.get("subject"):
            raise UnsupportedMediaType(
                f"{what}: an OCI artifact (artifactType/subject) has no Docker schema 2 form"
            )
        if config.get("mediaType") not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
            raise UnsupportedMediaType(
                f"{what}: config type {config.get('mediaType')!r} has no Docker schema 2 form"
            )
        config_type = mt.DOCKER_CONFIG
    else:
        if config.get("mediaType") not in (mt.DOCKER_CONFIG, mt.OCI_CONFIG):
            raise UnsupportedMediaType(
                f"{what}: config type {config.get('mediaType')!r} has no OCI image form"
            )
        config_type = mt.OCI_CONFIG
    out_layers = []
    for layer in layers:
        lt = mt.base(str(layer.get("mediaType", ""))) if isinstance(layer, dict) else ""
        table = _LAYER_TO_DOCKER if to_docker else _LAYER_TO_OCI
        if to_docker and lt in (mt.OCI_LAYER_ZSTD, mt.OCI_LAYER_NONDIST_ZSTD):
            raise UnsupportedMediaType(
                f"{what}: layer {layer.get('digest')} is zstd-compressed, which Docker schema 2 "
                "cannot describe; use the OCI format (or recompress with gzip)"
            )
        new_type = table.get(
            lt, lt if not to_docker and lt.startswith("application/vnd.oci") else ""
        )
        if not new_type:
            raise UnsupportedMediaType(
                f"{what}: layer {layer.get('digest') if isinstance(layer, dict) else layer!r} "
                f"of type {lt!r} has no {'Docker schema 2' if to_docker else 'OCI'} form"
            )
        out_layers.append(_descriptor(layer, new_type, not to_docker, what))
    out: dict[str, Any] = {"schemaVersion": 2, "mediaType": target}
    out["config"] = _descriptor(config, config_type, not to_docker, what)
    out["layers"] = out_layers
    if not to_docker and doc.get("annotations"):
        out["annotations"] = doc["annotations"]
    return _dump(out)


def convert_index(
    raw: bytes,
    media_type: str,
    target: str,
    children: ChildMap | None = None,
    what: str = "index",
) -> bytes:
    """Re-express an index / manifest list in `target`, re-pointing converted children."""
    media_type, target = mt.base(media_type), mt.base(target)
    if _kind(media_type, what) != "index" or _kind(target, what) != "index":
        raise InvalidArgument(f"{what}: cannot convert {media_type} to {target}")
    children = {old: new for old, new in (children or {}).items() if new[0] != old}
    if media_type == target and not children:
        return raw
    doc = _load(raw, what)
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidDocument(f"{what}: no manifests list")
    to_docker = target == mt.DOCKER_MANIFEST_LIST
    out_children = []
    for child in manifests:
        if not isinstance(child, dict) or not isinstance(child.get("digest"), str):
            raise InvalidDocument(f"{what}: malformed descriptor in manifests")
        new = dict(child)
        if child["digest"] in children:
            digest, size, ctype = children[child["digest"]]
            new.update(digest=digest, size=size, mediaType=ctype)
        ctype = mt.base(str(new.get("mediaType", "")))
        refuse_schema1(ctype, f"{what}: child {child['digest']}")
        if to_docker:
            if ctype != mt.DOCKER_MANIFEST:
                raise UnsupportedMediaType(
                    f"{what}: child {new['digest']} is {ctype or 'untyped'}, which a Docker "
                    "manifest list cannot hold; convert the children first"
                )
            new.pop("annotations", None)
            new.pop("artifactType", None)
        out_children.append(new)
    out: dict[str, Any] = {"schemaVersion": 2, "mediaType": target, "manifests": out_children}
    if not to_docker and doc.get("annotations"):
        out["annotations"] = doc["annotations"]
    return _dump(out)


def convert(raw: bytes, media_type: str, target: str, children: ChildMap | None = None) -> bytes:
    """convert_manifest or convert_index, by the kind of `media_type`."""
    if _kind(media_type, "manifest") == "index":
        return convert_index(raw, media_type, target, children)
    return convert_manifest(raw, media_type, target)

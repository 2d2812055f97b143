"""The docker-archive transport (`docker-archive:FILE[:NAME:TAG|:@N]`): the `docker save` format.

A docker-archive has no manifest, only manifest.json entries
`{Config, RepoTags, Layers}` naming files in the tar (classic `<id>/layer.tar`,
skopeo's `<diffid>.tar`, or Docker 25's `blobs/sha256/<hex>`; any of them may be
a symlink). As a source it therefore synthesises a Docker v2 schema 2 manifest;
the layers are usually plain tars, whose digest is their diffID from the config,
so opening an archive reads no layer bytes. As a destination it writes every layer
uncompressed (decompressing gzip or zstd on the way) as `<diffid-hex>.tar`, the
config as `<hex>.json`, plus manifest.json and repositories, as skopeo does.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from portside.errors import (
    InvalidArgument,
    InvalidDocument,
    InvalidReference,
    NotFound,
    UnsupportedMediaType,
)
from portside.images.archive_detect import decompress_chunks, decompressed_tar, detect_compression
from portside.images.transport import BlobInfo
from portside.images.transports.oci_layout import check_not_schema1, verified
from portside.images.transports.tarstream import PendingArchive, TarIndex
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, DigestVerifier
from portside.oci.reference import parse_reference

__all__ = [
    "DockerArchive",
    "DockerArchiveDestination",
    "DockerArchiveImage",
    "DockerArchiveSource",
    "DockerArchiveWriter",
    "parse_docker_archive_spec",
]


def parse_docker_archive_spec(spec: str) -> tuple[str, str | None]:
    """`docker-archive:FILE[:REF]` -> (FILE, REF); REF is `name[:tag]` or `@N`."""
    if spec.startswith("docker-archive:"):
        spec = spec[len("docker-archive:") :]
    path, sep, ref = spec.partition(":")
    if not path:
        raise InvalidArgument(f"docker-archive:{spec}: missing file name")
    return path, (ref if sep and ref else None)


def _same_name(a: str, b: str) -> bool:
    """Whether two references name one image (`busybox` is `docker.io/library/busybox:latest`)."""
    try:
        return str(parse_reference(a)) == str(parse_reference(b))
    except InvalidReference:
        return a == b


@dataclass(frozen=True)
class DockerArchiveImage:
    """One manifest.json entry."""

    index: int
    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]


class DockerArchive:
    """An opened (maybe compressed) docker-archive: its images, and sources for them."""

    def __init__(
        self, path: str | os.PathLike[str], tmpdir: str | None = None, name: str | None = None
    ) -> None:
        self._temporary = False
        plain, self._temporary = decompressed_tar(os.fspath(path), tmpdir)
        self.path = name or os.fspath(path)  # what errors call the archive
        self._plain = plain
        try:
            self.tar = TarIndex(plain, what=self.path)
            self.images = self._parse_manifest()
        except BaseException:
            self.close()
            raise

    def _parse_manifest(self) -> list[DockerArchiveImage]:
        if not self.tar.exists("manifest.json"):
            raise InvalidDocument(f"{self.path}: not a docker-archive (no manifest.json)")
        try:
            doc = json.loads(self.tar.read("manifest.json"))
        except ValueError as err:
            raise InvalidDocument(f"{self.path}: manifest.json is not valid JSON: {err}") from None
        if not isinstance(doc, list) or not doc:
            raise InvalidDocument(f"{self.path}: manifest.json lists no image")
        images = []
        for i, entry in enumerate(doc):
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("Config"), str)
                or not isinstance(entry.get("Layers"), list)
                or not all(isinstance(x, str) for x in entry["Layers"])
            ):
                raise InvalidDocument(f"{self.path}: manifest.json entry {i} is malformed")
            tags = entry.get("RepoTags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise InvalidDocument(f"{self.path}: manifest.json entry {i} has bad RepoTags")
            images.append(
                DockerArchiveImage(i, entry["Config"], tuple(tags), tuple(entry["Layers"]))
            )
        return images

    def select(self, ref: str | None) -> DockerArchiveImage:
        if ref is None:
            if len(self.images) == 1:
                return self.images[0]
            raise InvalidArgument(
                f"{self.path}: holds {len(self.images)} images; name one (NAME:TAG or @N)"
            )
        if ref.startswith("@") and ref[1:].isdigit():
            i = int(ref[1:])
            if i >= len(self.images):
                raise NotFound(f"{self.path}: no image @{i} (it holds {len(self.images)})")
            return self.images[i]
        for image in self.images:
            if any(_same_name(ref, tag) for tag in image.repo_tags):
                return image
        raise NotFound(f"{self.path}: no image tagged {ref!r}")

    def source(self, image: DockerArchiveImage) -> DockerArchiveSource:
        """A source for one image; valid until this archive is closed."""
        return DockerArchiveSource(self, image)

    def close(self) -> None:
        tar = getattr(self, "tar", None)
        if tar is not None:
            tar.close()
        if self._temporary:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._plain)
            self._temporary = False

    def __enter__(self) -> DockerArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DockerArchiveSource:
    """ImageSource for one image of a docker-archive, with a synthesised manifest."""

    def __init__(
        self,
        target: str | os.PathLike[str] | DockerArchive,
        image: DockerArchiveImage | str | None = None,
    ) -> None:
        if isinstance(target, DockerArchive):
            self.archive, self._owns = target, False
        else:
            self.archive, self._owns = DockerArchive(target), True
        try:
            if not isinstance(image, DockerArchiveImage):
                image = self.archive.select(image)
            self.image = image
            self.repo_tags = image.repo_tags
            self._paths: dict[str, str] = {}
            self._manifest = self._synthesise()
        except BaseException:
            self.close()
            raise

    def _member(self, name: str, what: str) -> str:
        if not self.archive.tar.exists(name):
            raise NotFound(
                f"{self.archive.path}: manifest.json names {what} {name!r}, "
                "which the archive does not contain"
            )
        return name

    def _synthesise(self) -> bytes:
        tar, path = self.archive.tar, self.archive.path
        config_name = self._member(self.image.config, "config")
        config_raw = tar.read(config_name)
        try:
            config = json.loads(config_raw)
        except ValueError as err:
            raise InvalidDocument(
                f"{path}: config {config_name} is not valid JSON: {err}"
            ) from None
        if not isinstance(config, dict):
            raise InvalidDocument(f"{path}: config {config_name} is not a JSON object")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(self.image.layers):
            raise InvalidDocument(
                f"{path}: config {config_name} lists {len(diff_ids)} diff_ids but manifest.json "
                f"names {len(self.image.layers)} layers"
            )
        config_digest = Digest.from_bytes(config_raw)
        self._paths[config_digest] = config_name
        layers: list[dict[str, Any]] = []
        any_zstd = False
        for name, diff_id in zip(self.image.layers, diff_ids, strict=True):
            self._member(name, "layer")
            size = tar.size(name)
            with tar.open(name) as f:
                compression = detect_compression(f.read(8))
            if compression is None:
                digest = Digest.parse(diff_id)
            elif compression in ("gzip", "zstd"):
                verifier = DigestVerifier()
                for chunk in tar.chunks(name):
                    verifier.update(chunk)
                digest = verifier.digest()
            else:
                raise UnsupportedMediaType(
                    f"{path}: layer {name} is {compression}-compressed, which images cannot carry"
                )
            any_zstd = any_zstd or compression == "zstd"
            self._paths[digest] = name
            layers.append({"compression": compression, "size": size, "digest": str(digest)})
        docker = not any_zstd
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG,
                "size": len(config_raw),
                "digest": str(config_digest),
            },
            "layers": [
                {
                    "mediaType": mt.layer_type(layer["compression"], docker=docker),
                    "size": layer["size"],
                    "digest": layer["digest"],
                }
                for layer in layers
            ],
        }
        self.media_type = manifest["mediaType"]
        return json.dumps(manifest, indent=3).encode()

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        if instance_digest is not None and instance_digest != Digest.from_bytes(self._manifest):
            raise NotFound(f"{self.archive.path}: a docker-archive holds no manifest list")
        return self._manifest, self.media_type

    def get_blob(self, blob: BlobInfo) -> Iterator[bytes]:
        name = self._paths.get(blob.digest)
        if name is None:
            raise NotFound(f"{self.archive.path}: no blob {blob.digest} in this image")
        return self.archive.tar.chunks(name)

    def close(self) -> None:
        if self._owns:
            self.archive.close()


def _tag_for(ref: str) -> str:
    """The RepoTags form of a reference: fully qualified, as skopeo writes it. Docker
    reads `docker.io/library/x` back as `x`, while podman takes an unqualified
    `x` to mean `localhost/x`: only the full form names one image for both."""
    parsed = parse_reference(ref)
    if parsed.tag is None:
        if parsed.digest is not None:
            raise InvalidArgument(f"{ref}: a docker-archive can only record name:tag, not a digest")
        parsed = parsed.with_tag("latest")
    return str(parsed)


class DockerArchiveWriter(PendingArchive):
    """A docker-archive being written beside `path`; commit() renames it into place."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._lock = threading.Lock()
        self._diff_ids: dict[str, str] = {}  # blob digest -> diffID of its uncompressed tar
        self._layers_written: set[str] = set()  # diffIDs
        self._configs: dict[str, bytes] = {}
        self._entries: list[dict[str, Any]] = []
        self._repositories: dict[str, dict[str, str]] = {}

    def destination(self, refs: list[str] | None = None) -> DockerArchiveDestination:
        return DockerArchiveDestination(self, refs)

    def has_blob(self, blob: BlobInfo) -> bool:
        return blob.digest in self._configs or blob.digest in self._diff_ids

    def config(self, digest: str) -> bytes | None:
        return self._configs.get(digest)

    def diff_id(self, digest: str) -> str | None:
        return self._diff_ids.get(digest)

    def put_config(self, blob: BlobInfo, chunks: Iterator[bytes]) -> None:
        data = b"".join(verified(chunks, blob))
        with self._lock:
            if blob.digest not in self._configs:
                self._tar.add_bytes(f"{Digest.parse(blob.digest).hex}.json", data)
                self._configs[blob.digest] = data

    def put_layer(self, blob: BlobInfo, chunks: Iterator[bytes]) -> str:
        """Write the layer uncompressed, named by its diffID; return the diffID."""
        raw = verified(chunks, blob)
        compression, plain = decompress_chunks(raw, f"layer {blob.digest}")
        if compression not in (None, "gzip", "zstd"):
            raise UnsupportedMediaType(f"layer {blob.digest}: {compression} compression")
        diff = DigestVerifier()
        # A plain sha256-addressed tar is its own diffID: verifying it is hashing it.
        is_plain = compression is None and Digest.parse(blob.digest).algorithm == "sha256"

        def hashed() -> Iterator[bytes]:
            for chunk in plain:
                if not is_plain:
                    diff.update(chunk)
                yield chunk
            for _ in raw:  # the rest after the compressed stream's end, so it is verified
                pass

        def diff_digest() -> Digest:
            return Digest.parse(blob.digest) if is_plain else diff.digest()

        placeholder = "0" * 64 + ".tar"
        with self._lock:
            mark = self._tar.mark()
            self._tar.add_stream(
                placeholder, hashed(), final_name=lambda: f"{diff_digest().hex}.tar"
            )
            diff_id = str(diff_digest())
            if diff_id in self._layers_written:
                self._tar.rollback(mark)
            self._layers_written.add(diff_id)
            self._diff_ids[blob.digest] = diff_id
        return diff_id

    def add_image(self, config_digest: str, diff_ids: list[str], tags: list[str]) -> None:
        entry = {
            "Config": f"{Digest.parse(config_digest).hex}.json",
            "RepoTags": tags,
            "Layers": [f"{Digest.parse(d).hex}.tar" for d in diff_ids],
        }
        for tag in tags:
            for other in self._entries:
                if tag in other["RepoTags"]:
                    other["RepoTags"].remove(tag)
            repo, _, version = tag.rpartition(":")
            if diff_ids:
                self._repositories.setdefault(repo, {})[version] = Digest.parse(diff_ids[-1]).hex
        for other in self._entries:
            if other["Config"] == entry["Config"] and other["Layers"] == entry["Layers"]:
                other["RepoTags"].extend(tags)  # one entry per image, as docker save writes
                return
        self._entries.append(entry)

    def commit(self) -> None:
        if not self._entries:
            raise InvalidArgument(f"{self.path}: no image was written")
        self._tar.add_bytes("manifest.json", json.dumps(self._entries).encode())
        self._tar.add_bytes("repositories", json.dumps(self._repositories).encode())
        self.publish()


class DockerArchiveDestination:
    """ImageDestination for one image of a docker-archive (tagged with `refs`)."""

    def __init__(
        self,
        target: str | os.PathLike[str] | DockerArchiveWriter,
        refs: list[str] | str | None = None,
    ) -> None:
        if isinstance(refs, str):
            refs = [refs]
        self.tags = [_tag_for(r) for r in refs or []]
        if isinstance(target, DockerArchiveWriter):
            self.writer, self._owns = target, False
        else:
            self.writer, self._owns = DockerArchiveWriter(target), True
        self._manifest: dict[str, Any] | None = None

    def supported_manifest_types(self) -> list[str]:
        # Any single-image manifest: layers are rewritten uncompressed anyway, so a
        # zstd OCI image needs no conversion. An index must be resolved to one platform.
        return [mt.DOCKER_MANIFEST, mt.OCI_MANIFEST]

    def has_blob(self, blob: BlobInfo) -> bool:
        return self.writer.has_blob(blob)

    def put_blob(self, blob: BlobInfo, chunks: Iterator[bytes]) -> None:
        if mt.is_config(blob.media_type):
            self.writer.put_config(blob, chunks)
        elif mt.is_layer(blob.media_type) or blob.size > (4 << 20):
            self.writer.put_layer(blob, chunks)
        else:
            # Untyped and small: a config is JSON, a layer is a (compressed) tar.
            data = b"".join(chunks)
            if data[:1] == b"{":
                self.writer.put_config(blob, iter([data]))
            else:
                self.writer.put_layer(blob, iter([data]))

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        where = f"{self.writer.path}: manifest"
        check_not_schema1(media_type, where)
        if mt.is_index(media_type):
            raise UnsupportedMediaType(
                f"{where}: a docker-archive holds single images, not an index; pick a platform"
            )
        if instance_digest is not None:
            return
        try:
            doc = json.loads(raw)
        except ValueError as err:
            raise InvalidDocument(f"{where}: not valid JSON: {err}") from None
        if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
            raise InvalidDocument(f"{where}: no config or layers")
        self._manifest = doc

    def commit(self) -> None:
        if self._manifest is None:
            raise InvalidArgument(f"{self.writer.path}: nothing to commit: no manifest was written")
        config_digest = self._manifest["config"]["digest"]
        config_raw = self.writer.config(config_digest)
        if config_raw is None:
            raise NotFound(f"{self.writer.path}: config {config_digest} was never written")
        diff_ids = []
        for layer in self._manifest["layers"]:
            diff_id = self.writer.diff_id(layer["digest"])
            if diff_id is None:
                raise NotFound(f"{self.writer.path}: layer {layer['digest']} was never written")
            diff_ids.append(diff_id)
        config = json.loads(config_raw)
        want = (config.get("rootfs") or {}).get("diff_ids") or []
        if want != diff_ids:
            raise InvalidDocument(
                f"{self.writer.path}: the layers uncompress to diffIDs {diff_ids}, "
                f"but config {config_digest} lists {want}"
            )
        self.writer.add_image(config_digest, diff_ids, self.tags)
        if self._owns:
            self.writer.commit()

    def close(self) -> None:
        if self._owns:
            self.writer.close()

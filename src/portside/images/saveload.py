"""save, load and import: moves between the local store and archive files, all via copy().

Kept out of the CLI so the engine and the API servers can call them too. Temp
files (a decompressed archive, stdin spooled to disk, an import's layer) live
under the store's own `tmp/`, on the same filesystem as the store, never in a
possibly small /tmp; each is removed when the call ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from portside.errors import FileAccessError, InvalidArgument, InvalidReference
from portside.images.archive_detect import (
    DOCKER_ARCHIVE,
    classify,
    decompressed_tar,
    detect_compression,
    open_decompressed,
    read_chunks,
)
from portside.images.copy import CopyOptions, copy
from portside.images.importer import ImportSource
from portside.images.store import ImageRecord, ImageStore, normalize_name
from portside.images.transport import ImageSource
from portside.images.transports.docker_archive import DockerArchive, DockerArchiveWriter
from portside.images.transports.local import LocalDestination, LocalSource
from portside.images.transports.oci_archive import OciArchive, OciArchiveWriter
from portside.images.transports.oci_layout import LayoutReader, OciLayoutDestination
from portside.images.transports.tarstream import TarIndex
from portside.oci.reference import parse_reference

__all__ = [
    "SAVE_FORMATS",
    "Loaded",
    "import_tarball",
    "load_archive",
    "save_images",
]

# --format of `save`, with podman's names and docker-ish short aliases.
SAVE_FORMATS = {
    "docker-archive": "docker-archive",
    "docker": "docker-archive",
    "oci-archive": "oci-archive",
    "oci": "oci-archive",
    "oci-dir": "oci-dir",
}


@dataclass
class Loaded:
    image: ImageRecord
    names: list[str] = field(default_factory=list)


def _tmpdir(store: ImageStore) -> str:
    path = Path(store.root) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _name_of(store: ImageStore, text: str, record: ImageRecord) -> str | None:
    """The name `text` gave the image by (None when it was an ID or digest)."""
    try:
        full = normalize_name(text)
    except InvalidReference:
        return None
    if full in record.names:
        return full
    with contextlib.suppress(InvalidReference):
        local = normalize_name(f"localhost/{text}")
        if local in record.names:
            return local
    return None


@contextlib.contextmanager
def _output(store: ImageStore, output: str | None) -> Iterator[str]:
    """A path to write the archive to; for stdout, a temp file copied out at the end."""
    if output is not None and output != "-":
        yield output
        return
    if sys.stdout.isatty():
        raise InvalidArgument("refusing to write an archive to a terminal; use -o FILE or redirect")
    with tempfile.TemporaryDirectory(dir=_tmpdir(store)) as tmp:
        path = os.path.join(tmp, "archive.tar")
        yield path
        if os.path.exists(path):
            with open(path, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()


def save_images(
    store: ImageStore, images: Sequence[str], output: str | None, fmt: str = "docker-archive"
) -> None:
    """Write `images` into one archive (or an OCI layout directory for `oci-dir`)."""
    try:
        _save(store, images, output, fmt)
    except OSError as err:
        raise FileAccessError.from_os(err) from None


def _save(store: ImageStore, images: Sequence[str], output: str | None, fmt: str) -> None:
    kind = SAVE_FORMATS.get(fmt)
    if kind is None:
        raise InvalidArgument(
            f"unknown save format {fmt!r}: use docker-archive, oci-archive or oci-dir"
        )
    if not images:
        raise InvalidArgument("save needs at least one image")
    records = [(text, store.get(text)) for text in images]
    if kind == "oci-dir":
        if not output or output == "-":
            raise InvalidArgument("--format oci-dir needs -o DIRECTORY")
        for text, rec in records:
            dest = OciLayoutDestination(output, _name_of(store, text, rec))
            try:
                copy(LocalSource(store, rec), dest, CopyOptions())
            finally:
                dest.close()
        return
    with _output(store, output) as path:
        docker = kind == "docker-archive"
        writer: DockerArchiveWriter | OciArchiveWriter = (
            DockerArchiveWriter(path) if docker else OciArchiveWriter(path)
        )
        try:
            for text, rec in records:
                name = _name_of(store, text, rec)
                if isinstance(writer, DockerArchiveWriter):
                    dest_d = writer.destination([name] if name else [])
                    copy(LocalSource(store, rec), dest_d, CopyOptions())
                else:
                    dest_o = writer.destination(name)
                    copy(LocalSource(store, rec), dest_o, CopyOptions())
            writer.commit()
        finally:
            writer.close()


def _spool(stream: BinaryIO, tmpdir: str) -> str:
    """Stdin to a temp plain tar, decompressing on the way (one write, not two)."""
    buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    reader = open_decompressed(buffered, detect_compression(buffered.peek(8)[:8]))
    fd, path = tempfile.mkstemp(prefix=".portside-load-", suffix=".tar", dir=tmpdir)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in read_chunks(reader, "stdin"):
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _oci_names(ref_name: str | None) -> list[str]:
    """Names for an image from its ref.name annotation: a full reference names it; a bare
    tag (`latest`, the usual OCI layout convention) says nothing about the repository."""
    if not ref_name or (":" not in ref_name and "/" not in ref_name):
        return []
    try:
        ref = parse_reference(ref_name)
    except InvalidReference:
        return []
    return [str(ref)] if ref.digest is None else []


def load_archive(
    store: ImageStore, path: str | None, options: CopyOptions | None = None
) -> list[Loaded]:
    """Load every image of a docker-archive or oci-archive (maybe compressed; None: stdin)."""
    try:
        return _load(store, path, options or CopyOptions())
    except OSError as err:
        raise FileAccessError.from_os(err) from None


def _load(store: ImageStore, path: str | None, options: CopyOptions) -> list[Loaded]:
    tmpdir = _tmpdir(store)
    cleanup: list[str] = []
    try:
        if path is None or path == "-":
            if sys.stdin.isatty():
                raise InvalidArgument("no archive on stdin; use -i FILE or redirect one")
            path = _spool(sys.stdin.buffer, tmpdir)
            cleanup.append(path)
        plain, temporary = decompressed_tar(path, tmpdir)
        if temporary:
            cleanup.append(plain)
        with TarIndex(plain, what=path) as index:
            kind = classify(index.names(), path)
        loaded: list[Loaded] = []
        if kind == DOCKER_ARCHIVE:
            with DockerArchive(plain, name=path) as docker:
                for image in docker.images:
                    names = [normalize_name(t) for t in image.repo_tags]
                    loaded.append(_load_one(store, docker.source(image), names, options))
        else:
            with OciArchive(plain, name=path) as oci:
                for entry in oci.entries():
                    names = _oci_names(LayoutReader.ref_name(entry))
                    source = oci.source(entry=entry)
                    loaded.append(_load_one(store, source, names, options))
        return loaded
    finally:
        for p in cleanup:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


def _load_one(
    store: ImageStore,
    source: ImageSource,
    names: list[str],
    options: CopyOptions,
) -> Loaded:
    dest = LocalDestination(store, names=names)
    try:
        copy(source, dest, options)
    except BaseException:
        dest.close()
        _drop_garbage(store)
        raise
    finally:
        dest.close()
        source.close()
    assert dest.image is not None
    return Loaded(dest.image, names)


def _drop_garbage(store: ImageStore) -> None:
    """After a failed load or import, take back the blobs it stored before failing.

    The GC keeps whatever an image or a live lease (a concurrent pull) still needs,
    so this removes only what no one references: what the failed copy left.
    """
    with contextlib.suppress(Exception):
        store.gc()


def import_tarball(
    store: ImageStore,
    tarball: str,
    reference: str | None = None,
    changes: Sequence[str] = (),
    message: str | None = None,
    platform: str | None = None,
) -> ImageRecord:
    """`portside import`: a one-layer image from a rootfs tarball (path or `-`)."""
    names = [normalize_name(reference)] if reference else []
    try:
        source = ImportSource(tarball, changes, message, tmpdir=_tmpdir(store), platform=platform)
    except OSError as err:
        raise FileAccessError.from_os(err, err.filename or tarball) from None
    return _load_one(store, source, names, CopyOptions()).image

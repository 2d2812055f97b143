"""copy(source, destination): the one routine behind pull, push, save and load.

It reads the manifest (choosing a platform from an index), copies the config
and the layers the destination lacks in parallel, verifying every byte, writes
the manifest bytes exactly as received (unless the destination needs the other
format), then commits. Progress goes to a callback so the CLI decides how it looks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from portside.errors import (
    InvalidDocument,
    NotFound,
    RegistryError,
    Unauthorized,
    UnsupportedMediaType,
)
from portside.images.transport import ImageDestination, ImageSource
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, DigestVerifier

__all__ = [
    "Blob",
    "CopyOptions",
    "CopyResult",
    "Progress",
    "copy",
]


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str


class Progress(Protocol):
    """What copy reports; the CLI renders it (live bars on a TTY, lines otherwise)."""

    def blob_start(self, blob: Blob, kind: str) -> None: ...

    def blob_advance(self, blob: Blob, nbytes: int) -> None: ...

    def blob_done(self, blob: Blob, skipped: bool) -> None: ...

    def manifest_written(self, digest: str, media_type: str) -> None: ...


@dataclass
class CopyOptions:
    platform: str | None = None  # "os/arch[/variant]"; default: the host's
    all_platforms: bool = False
    max_parallel: int = 3
    manifest_format: str | None = None  # "oci" or "docker": convert when needed
    compression: str | None = None  # "gzip", "zstd" or "none": recompress layers
    progress: Progress | None = None
    # called (in a copy thread) once a blob is verified in the destination, copied or
    # already there: (config digest, layer position or -1 for the config, blob); lets a
    # pull unpack each layer while the others still download
    on_blob: Callable[[str, int, Blob], None] | None = None


@dataclass
class CopyResult:
    digest: Digest  # of the top-level manifest written (index or manifest)
    media_type: str
    manifest_digest: Digest  # the (selected) platform manifest
    config_digest: Digest
    manifest: bytes = field(repr=False, default=b"")


def _select(raw: bytes, media_type: str, platform: str | None) -> str:
    """Digest of the index entry for `platform` (default: the host's)."""
    # imported here: a pull of a plain manifest needs neither (start-up time counts)
    from portside.oci.index import Index
    from portside.oci.platform import host_platform, parse_platform, select_manifest

    index = Index.parse(raw, media_type)
    wanted = parse_platform(platform) if platform else host_platform()
    return str(select_manifest(index, wanted).digest)


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidDocument(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidDocument(f"{what} is not a JSON object")
    return doc


# -- the copy ------------------------------------------------------------------------------


class _Counting:
    """Passes chunks through, verifying and reporting progress."""

    def __init__(self, chunks: Iterator[bytes], blob: Blob, progress: Progress | None) -> None:
        self._chunks = chunks
        self._blob = blob
        self._progress = progress

    def __iter__(self) -> Iterator[bytes]:
        verifier = DigestVerifier(Digest.parse(self._blob.digest).algorithm)
        try:
            for chunk in self._chunks:
                verifier.update(chunk)
                if self._progress is not None:
                    self._progress.blob_advance(self._blob, len(chunk))
                yield chunk
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        size = self._blob.size if self._blob.size >= 0 else None
        verifier.verify(self._blob.digest, size, f"blob {self._blob.digest}")


def _copy_blob(
    source: ImageSource,
    dest: ImageDestination,
    blob: Blob,
    kind: str,
    options: CopyOptions,
    ready: Callable[[Blob], None] | None = None,
) -> None:
    _copy_blob_only(source, dest, blob, kind, options)
    if ready is not None:
        ready(blob)


def _copy_blob_only(
    source: ImageSource, dest: ImageDestination, blob: Blob, kind: str, options: CopyOptions
) -> None:
    progress = options.progress
    if progress is not None:
        progress.blob_start(blob, kind)
    if dest.has_blob(blob):
        if progress is not None:
            progress.blob_done(blob, skipped=True)
        return
    resumable = getattr(dest, "put_blob_resumable", None)
    opener = getattr(source, "get_blob_at", None)
    if resumable is not None and opener is not None:
        # The destination verifies the whole blob (including a resumed prefix) itself.
        def open_at(offset: int) -> Iterator[bytes]:
            chunks: Iterator[bytes] = opener(blob, offset)
            return chunks

        advance = None if progress is None else (lambda n: progress.blob_advance(blob, n))
        resumable(blob, open_at, progress=advance)
    else:
        _put_with_retries(source, dest, blob, progress)
    if progress is not None:
        progress.blob_done(blob, skipped=False)


PUT_ATTEMPTS = 3


def _put_with_retries(
    source: ImageSource, dest: ImageDestination, blob: Blob, progress: Progress | None
) -> None:
    """put_blob, again from the start when the destination's transfer failed (an upload
    cut by the network); bad content and refusals are not retried."""
    for attempt in range(PUT_ATTEMPTS):
        try:
            dest.put_blob(blob, iter(_Counting(source.get_blob(blob), blob, progress)))
            return
        except (Unauthorized, NotFound):
            raise
        except RegistryError:
            if attempt == PUT_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _output_type(media_type: str, dest: ImageDestination, options: CopyOptions) -> str:
    """The manifest type to write: as received unless the format or destination says else."""
    supported = dest.supported_manifest_types()
    if options.manifest_format == "oci":
        return mt.OCI_MANIFEST
    if options.manifest_format == "docker":
        return mt.DOCKER_MANIFEST
    if options.compression == "zstd" and media_type == mt.DOCKER_MANIFEST:
        return mt.OCI_MANIFEST  # Docker schema 2 cannot describe zstd layers
    if media_type not in supported:
        return next((t for t in supported if mt.is_manifest(t)), media_type)
    return media_type


def _copy_recompressed(
    source: ImageSource,
    dest: ImageDestination,
    blob: Blob,
    target: str | None,
    docker: bool,
    options: CopyOptions,
) -> Blob | None:
    """Copy a layer re-encoded to `target`; returns the new blob (None if unchanged)."""
    import os

    from portside.images.recompress import file_chunks, recompress_to_file

    current = mt.layer_compression(blob.media_type)
    if current == target:
        _copy_blob(source, dest, blob, "layer", options)
        return None
    chunks = iter(_Counting(source.get_blob(blob), blob, None))
    path, digest, size = recompress_to_file(chunks, current, target)
    try:
        new = Blob(str(digest), size, mt.layer_type(target, docker=docker))
        progress = options.progress
        if progress is not None:
            progress.blob_start(new, "layer")
        skipped = dest.has_blob(new)
        if not skipped:
            dest.put_blob(new, iter(_Counting(file_chunks(path), new, progress)))
        if progress is not None:
            progress.blob_done(new, skipped)
        return new
    finally:
        os.unlink(path)


def _copy_image(
    source: ImageSource,
    dest: ImageDestination,
    raw: bytes,
    media_type: str,
    instance: str | None,
    options: CopyOptions,
    pool: ThreadPoolExecutor,
) -> tuple[bytes, str, Digest]:
    """Copy one platform image; returns (manifest bytes written, media type, config digest)."""
    what = f"manifest {instance}" if instance else "manifest"
    out_type = _output_type(media_type, dest, options)
    if out_type != media_type:
        from portside.images.convert import convert_manifest

        raw = convert_manifest(raw, media_type, out_type)
    doc = _load(raw, what)
    config = doc.get("config")
    if not isinstance(config, dict) or "digest" not in config:
        raise InvalidDocument(f"{what} has no config descriptor")
    config_blob = Blob(
        str(Digest.parse(config["digest"])),
        int(config.get("size", -1)),
        str(config.get("mediaType", "")),
    )
    hook = options.on_blob
    config_id = config_blob.digest

    def ready(position: int) -> Callable[[Blob], None] | None:
        if hook is None:
            return None
        return lambda b: hook(config_id, position, b)

    futures: list[Future[Any]] = [
        pool.submit(_copy_blob, source, dest, config_blob, "config", options, ready(-1))
    ]
    layer_jobs: list[tuple[dict[str, Any], Future[Blob | None] | None]] = []
    target = None if options.compression == "none" else options.compression
    for position, layer in enumerate(doc.get("layers") or []):
        if not isinstance(layer, dict) or "digest" not in layer:
            raise InvalidDocument(f"{what}: layer without a digest")
        if mt.is_nondistributable(str(layer.get("mediaType", ""))) and layer.get("urls"):
            layer_jobs.append((layer, None))
            continue
        blob = Blob(
            str(Digest.parse(layer["digest"])),
            int(layer.get("size", -1)),
            str(layer.get("mediaType", "")),
        )
        if options.compression is not None and mt.is_layer(blob.media_type):
            job = pool.submit(
                _copy_recompressed,
                source,
                dest,
                blob,
                target,
                out_type == mt.DOCKER_MANIFEST,
                options,
            )
            layer_jobs.append((layer, job))
            futures.append(job)
        else:
            futures.append(
                pool.submit(_copy_blob, source, dest, blob, "layer", options, ready(position))
            )
    done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for f in done:
        err = f.exception()
        if err is not None:
            for p in pending:
                p.cancel()
            wait(pending)
            raise err
    changed = False
    for layer, layer_job in layer_jobs:
        new = layer_job.result() if layer_job is not None else None
        if new is not None:
            layer.update(mediaType=new.media_type, digest=new.digest, size=new.size)
            changed = True
    out = json.dumps(doc, separators=(",", ":")).encode() if changed else raw
    # an index child is written under its own (possibly new, if converted) digest
    written_instance = None if instance is None else str(Digest.from_bytes(out))
    dest.put_manifest(out, out_type, written_instance)
    if options.progress is not None:
        options.progress.manifest_written(str(Digest.from_bytes(out)), out_type)
    return out, out_type, Digest.parse(config["digest"])


def copy(
    source: ImageSource, dest: ImageDestination, options: CopyOptions | None = None
) -> CopyResult:
    """Copy one image (or index) from source to dest; commit only if everything verified."""
    options = options or CopyOptions()
    raw, media_type = source.get_manifest(None)
    media_type = mt.base(media_type)
    if mt.is_schema1(media_type):
        raise UnsupportedMediaType("Docker schema 1 manifests are not supported")
    parallel = max(1, options.max_parallel)
    with ThreadPoolExecutor(parallel, thread_name_prefix="copy") as pool:
        if not mt.is_index(media_type):
            out, out_type, config = _copy_image(source, dest, raw, media_type, None, options, pool)
            d = Digest.from_bytes(out)
            dest.commit()
            return CopyResult(d, out_type, d, config, out)
        index = _load(raw, "index")
        entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
        if options.all_platforms:
            chosen = [e for e in entries if mt.is_manifest(str(e.get("mediaType", "")))]
            if not chosen:
                raise NotFound("the index lists no image manifests")
            selected = chosen[0]
            try:
                sel_digest = _select(raw, media_type, options.platform)
                selected = next(e for e in chosen if e.get("digest") == sel_digest)
            except (NotFound, StopIteration):
                pass
        else:
            sel_digest = _select(raw, media_type, options.platform)
            selected = next(e for e in entries if e.get("digest") == sel_digest)
            chosen = [selected]
        keeps_index = options.all_platforms or hasattr(dest, "selected_instance")
        results: dict[str, tuple[bytes, str, Digest]] = {}
        for entry in chosen:
            child = str(Digest.parse(entry["digest"]))
            child_raw, child_type = source.get_manifest(child)
            got = Digest.from_bytes(child_raw, Digest.parse(child).algorithm)
            if got != child:
                from portside.errors import DigestMismatch

                raise DigestMismatch(child, got, f"manifest {child}")
            results[child] = _copy_image(
                source,
                dest,
                child_raw,
                mt.base(child_type or entry.get("mediaType", "")),
                child if keeps_index else None,
                options,
                pool,
            )
        sel = str(Digest.parse(selected["digest"]))
        sel_raw, sel_type, sel_config = results[sel]
        if keeps_index:
            if hasattr(dest, "selected_instance"):
                dest.selected_instance = str(Digest.from_bytes(sel_raw))
            index_type = media_type
            if options.manifest_format == "docker":
                index_type = mt.DOCKER_MANIFEST_LIST
            elif options.manifest_format == "oci":
                index_type = mt.OCI_INDEX
            supported = dest.supported_manifest_types()
            if index_type not in supported:
                raise UnsupportedMediaType(f"destination does not accept an index ({index_type})")
            from portside.images.convert import convert_index

            children = {
                old: (str(Digest.from_bytes(r[0])), len(r[0]), r[1]) for old, r in results.items()
            }
            raw = convert_index(raw, media_type, index_type, children)
            dest.put_manifest(raw, index_type, None)
            dest.commit()
            top = Digest.from_bytes(raw)
            return CopyResult(top, index_type, Digest.from_bytes(sel_raw), sel_config, raw)
        dest.commit()
        d = Digest.from_bytes(sel_raw)
        return CopyResult(d, sel_type, d, sel_config, sel_raw)

"""The OCI image layout transport (`oci:DIR[:REF]`), as skopeo and umoci read and write it.

The source side is written over a small file-access seam so the same code reads
a layout directory and an `oci-archive` tar in place. The destination writes each
blob to a temp name, verifies it and renames it into `blobs/<alg>/<hex>`; the image
becomes visible only when commit() rewrites index.json, so an interrupted copy
leaves no half-listed image.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from portside.errors import (
    DigestMismatch,
    InvalidArgument,
    InvalidDocument,
    NotFound,
    UnsupportedMediaType,
)
from portside.images.transport import BlobInfo
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, DigestVerifier

__all__ = [
    "REF_NAME",
    "Blob",
    "DirFiles",
    "LayoutFiles",
    "LayoutReader",
    "OciLayoutDestination",
    "OciLayoutSource",
    "parse_oci_spec",
    "verified",
]

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    """A minimal BlobInfo for blobs a transport describes itself."""

    digest: str
    size: int
    media_type: str


def parse_oci_spec(spec: str, prefix: str = "oci") -> tuple[str, str | None]:
    """`[oci:]PATH[:REF]` -> (PATH, REF); the first colon splits, as skopeo does."""
    if spec.startswith(prefix + ":"):
        spec = spec[len(prefix) + 1 :]
    path, sep, ref = spec.partition(":")
    if not path:
        raise InvalidArgument(f"{prefix}:{spec}: missing path")
    return path, (ref if sep and ref else None)


def blob_path(digest: str) -> str:
    d = Digest.parse(digest)
    return f"blobs/{d.algorithm}/{d.hex}"


def verified(chunks: Iterable[bytes], blob: BlobInfo, what: str | None = None) -> Iterator[bytes]:
    """Pass chunks through, raising Size/DigestMismatch after the last one if they lie."""
    verifier = DigestVerifier(Digest.parse(blob.digest).algorithm)
    for chunk in chunks:
        verifier.update(chunk)
        yield chunk
    size = blob.size if blob.size >= 0 else None
    verifier.verify(blob.digest, size, what or f"blob {blob.digest}")


def check_not_schema1(media_type: str, what: str) -> None:
    if mt.is_schema1(media_type):
        raise UnsupportedMediaType(
            f"{what}: Docker schema 1 manifests are not supported ({media_type}); "
            "convert the image with a newer tool"
        )


def manifest_media_type(raw: bytes, fallback: str | None, what: str) -> str:
    """The media type a manifest declares, else the descriptor's, else guessed from fields."""
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise InvalidDocument(f"{what}: not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise InvalidDocument(f"{what}: not a JSON object")
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        check_not_schema1(declared, what)
        return declared
    if doc.get("schemaVersion") == 1:
        check_not_schema1(mt.DOCKER_SCHEMA1_MANIFEST, what)
    if fallback:
        check_not_schema1(fallback, what)
        return fallback
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "layers" in doc or "config" in doc:
        return mt.OCI_MANIFEST
    raise InvalidDocument(f"{what}: neither a manifest nor an index")


class LayoutFiles(Protocol):
    """Read access to the files of a layout, wherever they live."""

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def read(self, name: str, limit: int = ...) -> bytes: ...

    def chunks(self, name: str) -> Iterator[bytes]: ...


class DirFiles:
    """LayoutFiles over a directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)

    def _p(self, name: str) -> str:
        return os.path.join(self.root, name)

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._p(name))

    def size(self, name: str) -> int:
        try:
            return os.stat(self._p(name)).st_size
        except FileNotFoundError:
            raise NotFound(f"{self.root}: no file {name!r}") from None

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        try:
            with open(self._p(name), "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise NotFound(f"{self.root}: no file {name!r}") from None
        if len(data) > limit:
            raise InvalidDocument(f"{self.root}: {name} is too large to be JSON")
        return data

    def chunks(self, name: str) -> Iterator[bytes]:
        try:
            f = open(self._p(name), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise NotFound(f"{self.root}: no file {name!r}") from None
        return self._gen(f)

    @staticmethod
    def _gen(f: Any) -> Iterator[bytes]:
        with f:
            while True:
                data = f.read(CHUNK)
                if not data:
                    return
                yield data


def _load_json(files: LayoutFiles, name: str, what: str) -> Any:
    try:
        return json.loads(files.read(name))
    except ValueError as err:
        raise InvalidDocument(f"{what}: {name} is not valid JSON: {err}") from None


class LayoutReader:
    """The images an OCI layout holds: index.json entries, with their ref names."""

    def __init__(self, files: LayoutFiles, what: str) -> None:
        self.files = files
        self.what = what
        if not files.exists("index.json"):
            raise InvalidDocument(f"{what}: not an OCI image layout (no index.json)")
        if files.exists(LAYOUT_FILE):
            layout = _load_json(files, LAYOUT_FILE, what)
            version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
            if not isinstance(version, str) or not version.startswith("1."):
                raise InvalidDocument(f"{what}: unsupported image layout version {version!r}")
        index = _load_json(files, "index.json", what)
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list):
            raise InvalidDocument(f"{what}: index.json has no manifests list")
        self.entries: list[dict[str, Any]] = []
        for entry in manifests:
            if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
                raise InvalidDocument(f"{what}: index.json has a malformed descriptor")
            Digest.parse(entry["digest"])
            self.entries.append(entry)

    @staticmethod
    def ref_name(entry: dict[str, Any]) -> str | None:
        ann = entry.get("annotations")
        if isinstance(ann, dict):
            name = ann.get(REF_NAME)
            if isinstance(name, str):
                return name
        return None

    def names(self) -> list[str | None]:
        return [self.ref_name(e) for e in self.entries]

    def select(self, ref: str | None) -> dict[str, Any]:
        """The entry named `ref` (or `@N`, or a digest), or the only one if ref is None."""
        if ref is None:
            if len(self.entries) == 1:
                return self.entries[0]
            if not self.entries:
                raise NotFound(f"{self.what}: the layout holds no image")
            named = sorted({n for n in self.names() if n})
            raise InvalidArgument(
                f"{self.what}: holds {len(self.entries)} images; name one of "
                f"{', '.join(named) or '(none are named)'}"
            )
        if ref.startswith("@") and ref[1:].isdigit():
            i = int(ref[1:])
            if i >= len(self.entries):
                raise NotFound(f"{self.what}: no image @{i} (it holds {len(self.entries)})")
            return self.entries[i]
        matches = [e for e in self.entries if self.ref_name(e) == ref]
        if not matches and ":" in ref and ref.split(":", 1)[0] in ("sha256", "sha512"):
            matches = [e for e in self.entries if e["digest"] == ref]
        if not matches:
            raise NotFound(f"{self.what}: no image named {ref!r}")
        return matches[-1]


class OciLayoutSource:
    """ImageSource over an OCI layout (directory or, via oci_archive, a tar)."""

    def __init__(
        self,
        files: LayoutFiles,
        ref: str | None = None,
        what: str | None = None,
        entry: dict[str, Any] | None = None,
    ) -> None:
        self.what: str = what or str(getattr(files, "root", "oci layout"))
        self.files = files
        self.reader = LayoutReader(files, self.what)
        self.entry = entry if entry is not None else self.reader.select(ref)
        self.ref_name = LayoutReader.ref_name(self.entry)
        self._child_types: dict[str, str] = {}
        self._top: tuple[bytes, str] | None = None

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str], ref: str | None = None) -> OciLayoutSource:
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise NotFound(f"{path}: no such OCI layout directory")
        return cls(DirFiles(path), ref, what=path)

    def _blob_bytes(self, digest: str, what: str) -> bytes:
        name = blob_path(digest)
        if not self.files.exists(name):
            raise NotFound(f"{self.what}: missing blob {digest} ({what})")
        raw = self.files.read(name)
        actual = Digest.from_bytes(raw, Digest.parse(digest).algorithm)
        if actual != digest:
            raise DigestMismatch(digest, actual, f"{self.what}: {what}")
        return raw

    def _top_manifest(self) -> tuple[bytes, str]:
        if self._top is None:
            digest = self.entry["digest"]
            raw = self._blob_bytes(digest, "manifest")
            media_type = manifest_media_type(
                raw, self.entry.get("mediaType"), f"{self.what}: manifest {digest}"
            )
            if mt.is_index(media_type):
                for child in json.loads(raw).get("manifests") or []:
                    if isinstance(child, dict) and isinstance(child.get("mediaType"), str):
                        self._child_types[str(child.get("digest"))] = child["mediaType"]
            self._top = (raw, media_type)
        return self._top

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        if instance_digest is None:
            return self._top_manifest()
        self._top_manifest()
        raw = self._blob_bytes(instance_digest, "manifest")
        media_type = manifest_media_type(
            raw, self._child_types.get(instance_digest), f"{self.what}: manifest {instance_digest}"
        )
        return raw, media_type

    def get_blob(self, blob: BlobInfo) -> Iterator[bytes]:
        name = blob_path(blob.digest)
        if not self.files.exists(name):
            raise NotFound(f"{self.what}: missing blob {blob.digest}")
        return self.files.chunks(name)

    def close(self) -> None:
        closer = getattr(self.files, "close", None)
        if closer is not None:
            closer()


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class OciLayoutDestination:
    """ImageDestination writing into an OCI layout directory (created if absent)."""

    def __init__(self, path: str | os.PathLike[str], ref: str | None = None) -> None:
        self.path = os.fspath(path)
        self.ref = ref
        self._created_dir = False
        self._wrote_layout_file = False
        try:
            os.makedirs(self.path)
            self._created_dir = True
        except FileExistsError:
            if not os.path.isdir(self.path):
                raise InvalidArgument(f"{self.path}: exists and is not a directory") from None
        with self._locked():
            if not os.path.isfile(os.path.join(self.path, LAYOUT_FILE)):
                if os.listdir(self.path):
                    raise InvalidArgument(
                        f"{self.path}: not empty and not an OCI image layout (no oci-layout file)"
                    )
                _atomic_write(os.path.join(self.path, LAYOUT_FILE), LAYOUT_VERSION)
                self._wrote_layout_file = True
        self._new_blobs: list[str] = []
        self._lock = threading.Lock()
        self._top: dict[str, Any] | None = None
        self._committed = False

    def supported_manifest_types(self) -> list[str]:
        return [mt.OCI_MANIFEST, mt.OCI_INDEX]

    def _final(self, digest: str) -> str:
        return os.path.join(self.path, blob_path(digest))

    def has_blob(self, blob: BlobInfo) -> bool:
        try:
            st = os.stat(self._final(blob.digest))
        except FileNotFoundError:
            return False
        return blob.size < 0 or st.st_size == blob.size

    def put_blob(self, blob: BlobInfo, chunks: Iterator[bytes]) -> None:
        final = self._final(blob.digest)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(final))
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in verified(chunks, blob):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            existed = os.path.exists(final)
            os.rename(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if not existed:
            with self._lock:
                self._new_blobs.append(final)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        check_not_schema1(media_type, f"{self.path}: manifest")
        digest = Digest.from_bytes(raw)
        if not self.has_blob(Blob(digest, len(raw), media_type)):
            self.put_blob(Blob(digest, len(raw), media_type), iter([raw]))
        if instance_digest is None:
            self._top = {"mediaType": media_type, "digest": str(digest), "size": len(raw)}

    def commit(self) -> None:
        if self._top is None:
            raise InvalidArgument(f"{self.path}: nothing to commit: no manifest was written")
        with self._locked():
            self._write_index()
        self._committed = True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers of one layout, which would each rewrite index.json from what
        they read (flock on the directory's fd: no lock file other tools would see)."""
        dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(dir_fd)

    def _write_index(self) -> None:
        assert self._top is not None
        index_path = os.path.join(self.path, "index.json")
        index: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
        if os.path.exists(index_path):
            with open(index_path, "rb") as f:
                try:
                    index = json.load(f)
                except ValueError as err:
                    raise InvalidDocument(f"{index_path}: not valid JSON: {err}") from None
            if not isinstance(index.get("manifests"), list):
                index["manifests"] = []
        entry = dict(self._top)
        manifests = index["manifests"]
        if self.ref is not None:
            entry["annotations"] = {REF_NAME: self.ref}
            manifests = [e for e in manifests if LayoutReader.ref_name(e) != self.ref]
        else:
            manifests = [
                e
                for e in manifests
                if not (e.get("digest") == entry["digest"] and LayoutReader.ref_name(e) is None)
            ]
        manifests.append(entry)
        index["manifests"] = manifests
        index.setdefault("schemaVersion", 2)
        _atomic_write(index_path, json.dumps(index, separators=(",", ":")).encode())

    def close(self) -> None:
        if self._committed or not os.path.isdir(self.path):
            return
        for path in self._new_blobs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._new_blobs.clear()
        # Undo the layout skeleton only while it is still empty: another writer may be
        # filling the same directory (rmdir fails on anything it added).
        with self._locked():
            if self._wrote_layout_file and not os.path.exists(
                os.path.join(self.path, "index.json")
            ):
                for sub in (os.path.join("blobs", "sha256"), os.path.join("blobs", "sha512")):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(self.path, sub))
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(self.path, "blobs"))
                if os.listdir(self.path) == [LAYOUT_FILE]:
                    os.unlink(os.path.join(self.path, LAYOUT_FILE))
        if self._created_dir:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)

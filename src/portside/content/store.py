"""Content-addressed blob store: ingest, verified reads, leases and garbage collection.

Layout under ROOT/content:

    blobs/<alg>/<hex>        committed blobs, never modified after the rename
    ingest/<ref>/data        a blob being written; kept across crashes so it can resume
    ingest/<ref>.lock        flock held by the one writer of that ref
    leases/<id>              digests an in-progress pull or build still needs; the file is
                             flocked by its holder, so a lease of a dead process is stale

A blob becomes visible only by an atomic rename after its size and digest were
checked, so a reader never sees half a blob and a crash leaves only an ingest
that the next writer resumes (or GC removes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from portside.errors import DigestMismatch, InvalidArgument, NotFound, SizeMismatch
from portside.oci.digest import ALGORITHMS, Digest, DigestVerifier

__all__ = ["BlobProblem", "ContentStore", "GCReport", "Lease", "Writer", "children_of"]

CHUNK = 1 << 20
_REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,200}")


def _safe_ref(ref: str) -> str:
    """Refs become file names: keep them to a safe alphabet."""
    name = ref.replace("/", "_").replace(":", "-")
    if _REF_RE.fullmatch(name) is None:
        raise InvalidArgument(f"invalid ingest ref {ref!r}")
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 65536):
        parts.append(chunk)
    return b"".join(parts)


@dataclass(frozen=True)
class BlobProblem:
    """One thing `verify_all` found wrong."""

    path: Path
    digest: str | None
    reason: str


@dataclass
class GCReport:
    removed: list[Digest]
    freed: int
    ingests_removed: int


def children_of(raw: bytes) -> list[Digest]:
    """Digests a manifest or index points to (config, layers, manifests, subject).

    Any JSON blob is scanned for descriptors so GC never drops what an unknown
    document kind references; non-JSON blobs (layers) have no children.
    """
    if raw[:1] != b"{":
        return []
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(doc, dict):
        return []
    out: list[Digest] = []

    def take(desc: object) -> None:
        if isinstance(desc, dict) and isinstance(desc.get("digest"), str):
            with contextlib.suppress(Exception):
                out.append(Digest.parse(desc["digest"]))

    take(doc.get("config"))
    take(doc.get("subject"))
    for key in ("layers", "manifests", "blobs"):
        items = doc.get(key)
        if isinstance(items, list):
            for item in items:
                take(item)
    return out


class Writer:
    """Writes one blob into an ingest; resumable from `offset` after a crash.

    Holds the ref's flock for its whole life, so two writers of one ref never
    interleave; the second one finds the blob committed (see `ContentStore.writer`).
    """

    def __init__(self, store: ContentStore, ref: str, lock_fd: int, algorithm: str) -> None:
        self._store = store
        self.ref = ref
        self._lock_fd = lock_fd
        self._dir = store.ingest_dir / _safe_ref(ref)
        self._lock_path = store.ingest_dir / f"{_safe_ref(ref)}.lock"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._data = self._dir / "data"
        self._verifier = DigestVerifier(algorithm)
        self._closed = False
        # Resume: hash what an earlier (crashed) writer left.
        mode = "r+b" if self._data.exists() else "w+b"
        self._file = open(self._data, mode)  # noqa: SIM115 - closed in close()
        while True:
            chunk = self._file.read(CHUNK)
            if not chunk:
                break
            self._verifier.update(chunk)

    @property
    def offset(self) -> int:
        """Bytes already in the ingest: where a resumed download should start."""
        return self._verifier.size

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._verifier.update(chunk)

    def truncate(self) -> None:
        """Start over (a source that cannot resume at `offset`)."""
        self._file.seek(0)
        self._file.truncate()
        self._verifier = DigestVerifier(self._verifier.algorithm)

    def digest(self) -> Digest:
        return self._verifier.digest()

    def commit(
        self, size: int | None = None, expected: Digest | str | None = None, what: str = ""
    ) -> Digest:
        """Verify size and digest, then rename into place; on mismatch nothing is kept."""
        label = what or (str(expected) if expected else self.ref)
        try:
            if size is not None and size != self.offset:
                raise SizeMismatch(size, self.offset, label)
            actual = self._verifier.digest()
            if expected is not None and Digest.parse(expected) != actual:
                raise DigestMismatch(str(expected), actual, label)
        except (SizeMismatch, DigestMismatch):
            self.abort()
            raise
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = self._store.blob_path(actual)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            self._data.unlink()
        else:
            os.chmod(self._data, 0o444)
            os.rename(self._data, target)
            _fsync_dir(target.parent)
        self._cleanup()
        return actual

    def abort(self) -> None:
        """Throw away the ingest entirely (bad content must not be resumed)."""
        if not self._file.closed:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._data.unlink()
        self._cleanup()

    def close(self) -> None:
        """Release the ref, keeping a partial ingest for a later resume."""
        if self._closed:
            return
        if not self._file.closed:
            self._file.flush()
            self._file.close()
        self._release()

    def _cleanup(self) -> None:
        with contextlib.suppress(OSError):
            self._dir.rmdir()
        if not self._closed:
            with contextlib.suppress(OSError):
                self._lock_path.unlink()
        self._release()

    def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.close(self._lock_fd)

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Lease:
    """Protects blobs from GC while a pull or build is in progress.

    The lease file lists digests; its flock is held as long as the lease object
    lives, so GC can tell a live lease from one left by a killed process.
    """

    def __init__(self, path: Path, store: ContentStore | None = None) -> None:
        self.path = path
        self._store = store
        self._digests: set[str] = set()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def add(self, digest: str) -> None:
        if digest in self._digests:
            return
        if self._store is None:
            self._append(digest)
            return
        with self._store.gc_lock(shared=True):
            self._append(digest)

    def _append(self, digest: str) -> None:
        self._digests.add(digest)
        os.write(self._fd, (digest + "\n").encode())

    def protect(self, digest: str) -> bool:
        """Lease `digest` and tell whether the blob is there; GC cannot slip between."""
        if self._store is None:
            raise InvalidArgument("protect() needs a lease made by ContentStore.lease()")
        with self._store.gc_lock(shared=True):
            if digest not in self._digests:
                self._append(digest)
            return self._store.has(digest)

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class ContentStore:
    """Blobs addressed by digest under `root` (normally STATE_ROOT/content)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.ingest_dir = self.root / "ingest"
        self.leases_dir = self.root / "leases"
        for d in (self.blobs_dir, self.ingest_dir, self.leases_dir):
            d.mkdir(parents=True, exist_ok=True)

    # -- reading -------------------------------------------------------------------------
    def blob_path(self, digest: Digest | str) -> Path:
        d = Digest.parse(digest)
        return self.blobs_dir / d.algorithm / d.hex

    def has(self, digest: Digest | str) -> bool:
        return self.blob_path(digest).is_file()

    def size(self, digest: Digest | str) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def read_chunks(self, digest: Digest | str, verify: bool = True) -> Iterator[bytes]:
        """The blob's bytes; with `verify`, the last chunk is given only if it hashed right."""
        d = Digest.parse(digest)
        try:
            f = open(self.blob_path(d), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise NotFound(f"blob {d} not found in the content store") from None
        verifier = DigestVerifier(d.algorithm) if verify else None
        with f:
            pending = f.read(CHUNK)
            while pending:
                nxt = f.read(CHUNK)
                if verifier is not None:
                    verifier.update(pending)
                    if not nxt:
                        verifier.verify(d, what=f"stored blob {d}")
                yield pending
                pending = nxt
            if verifier is not None and verifier.size == 0:
                verifier.verify(d, what=f"stored blob {d}")

    def read_bytes(self, digest: Digest | str, verify: bool = True) -> bytes:
        return b"".join(self.read_chunks(digest, verify))

    def blobs(self) -> Iterator[tuple[Digest, int]]:
        for alg_dir in sorted(self.blobs_dir.iterdir()):
            if alg_dir.name not in ALGORITHMS:
                continue
            for entry in os.scandir(alg_dir):
                try:
                    d = Digest(f"{alg_dir.name}:{entry.name}")
                except Exception:
                    continue
                yield d, entry.stat().st_size

    # -- writing -------------------------------------------------------------------------
    def writer(
        self, ref: str, algorithm: str = "sha256", expected: Digest | str | None = None
    ) -> Writer | None:
        """An exclusive writer for `ref`, or None when `expected` is already committed.

        Blocks while another process writes the same ref; when it has committed
        the blob, there is nothing left to do, so the blob is stored once.
        """
        if expected is not None and self.has(expected):
            return None
        fd = self._lock_ref(self.ingest_dir / f"{_safe_ref(ref)}.lock", blocking=True)
        assert fd is not None
        if expected is not None and self.has(expected):
            os.close(fd)
            return None
        try:
            return Writer(self, ref, fd, algorithm)
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _lock_ref(lock_path: Path, blocking: bool) -> int | None:
        """flock `lock_path`, retrying if the file was unlinked while we waited.

        A finished writer deletes its lock file while still holding it; whoever was
        waiting on that inode must not believe it holds the ref's lock.
        """
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def ingest(
        self,
        chunks: Iterable[bytes],
        expected: Digest | str | None = None,
        size: int | None = None,
        ref: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Digest:
        """Store a stream from its start; returns its digest (verified if `expected`)."""
        if ref is None:
            ref = f"ingest-{expected}" if expected else f"tmp-{os.urandom(8).hex()}"
        w = self.writer(ref, expected=expected)
        if w is None:
            assert expected is not None
            return Digest.parse(expected)
        with w:
            w.truncate()
            for chunk in chunks:
                w.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            return w.commit(size, expected)

    def put_bytes(self, data: bytes, expected: Digest | str | None = None) -> Digest:
        return self.ingest([data], expected, len(data))

    def delete(self, digest: Digest | str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(digest).unlink()

    # -- leases and GC -------------------------------------------------------------------
    def lease(self, name: str | None = None) -> Lease:
        lease_name = _safe_ref(name or f"lease-{os.getpid()}-{os.urandom(6).hex()}")
        return Lease(self.leases_dir / lease_name, self)

    @contextlib.contextmanager
    def gc_lock(self, shared: bool) -> Iterator[None]:
        """Shared by lease updates and image commits, exclusive for a GC's mark and sweep,
        so a blob is never swept between being found and being leased or referenced."""
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _leased(self) -> set[str]:
        """Digests of live leases; removes lease files of dead holders."""
        out: set[str] = set()
        for path in self.leases_dir.iterdir():
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    # read through the fd we hold, not the name: a holder releasing
                    # now unlinks the file (an `image prune` during the end of a pull
                    # met FileNotFoundError here)
                    out.update(_read_all(fd).decode().split())
                    continue
                path.unlink(missing_ok=True)  # holder is gone
            finally:
                os.close(fd)
        return out

    def _stale_ingests(self) -> Iterator[tuple[Path, int]]:
        """Ingests whose writer is gone, each with its (locked) lock fd; caller closes."""
        for entry in self.ingest_dir.iterdir():
            if not entry.is_dir():
                continue
            fd = self._lock_ref(self.ingest_dir / f"{entry.name}.lock", blocking=False)
            if fd is not None:
                yield entry, fd

    def gc(
        self,
        roots: Iterable[Digest | str] | Callable[[], Iterable[Digest | str]],
        keep_ingests: bool = True,
    ) -> GCReport:
        """Mark from `roots` (image manifests/indexes) and live leases, sweep the rest.

        `roots` may be a callable, called under the GC lock, so an image committed
        while the GC runs is either seen as a root or still leased.
        """
        with self.gc_lock(shared=False):
            return self._gc(roots() if callable(roots) else roots, keep_ingests)

    def _gc(self, roots: Iterable[Digest | str], keep_ingests: bool) -> GCReport:
        marked: set[str] = set()
        stack = [str(r) for r in roots] + sorted(self._leased())
        while stack:
            d = stack.pop()
            if d in marked:
                continue
            marked.add(d)
            try:
                path = self.blob_path(d)
            except Exception:
                continue
            try:
                with open(path, "rb") as f:
                    head = f.read(1)
                    if head == b"{":
                        raw = head + f.read()
                        stack.extend(str(c) for c in children_of(raw))
            except FileNotFoundError:
                continue
        removed: list[Digest] = []
        freed = 0
        for d, size in list(self.blobs()):
            if d in marked:
                continue
            self.delete(d)
            removed.append(d)
            freed += size
        ingests = 0
        if not keep_ingests:
            for entry, fd in self._stale_ingests():
                try:
                    import shutil  # here: shutil pulls bz2 and lzma into every pull

                    shutil.rmtree(entry, ignore_errors=True)
                    (self.ingest_dir / f"{entry.name}.lock").unlink(missing_ok=True)
                    ingests += 1
                finally:
                    os.close(fd)
            # lock files of refs with no ingest left (a writer killed before writing)
            for lock in self.ingest_dir.glob("*.lock"):
                if (self.ingest_dir / lock.name[: -len(".lock")]).exists():
                    continue
                held = self._lock_ref(lock, blocking=False)
                if held is not None:
                    try:
                        if not (self.ingest_dir / lock.name[: -len(".lock")]).exists():
                            lock.unlink(missing_ok=True)
                    finally:
                        os.close(held)
        return GCReport(removed, freed, ingests)

    # -- checking ------------------------------------------------------------------------
    def verify_all(self, repair: bool = False) -> list[BlobProblem]:
        """Rehash every blob; report (and with `repair` remove) the broken ones."""
        problems: list[BlobProblem] = []
        for alg_dir in sorted(self.blobs_dir.iterdir()):
            for entry in sorted(os.scandir(alg_dir), key=lambda e: e.name):
                path = Path(entry.path)
                try:
                    d = Digest(f"{alg_dir.name}:{entry.name}")
                except Exception:
                    problems.append(BlobProblem(path, None, "not a blob name"))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    problems.append(BlobProblem(path, d, "not a regular file"))
                    continue
                verifier = DigestVerifier(d.algorithm)
                with open(path, "rb") as f:
                    while chunk := f.read(CHUNK):
                        verifier.update(chunk)
                if verifier.digest() != d:
                    problems.append(BlobProblem(path, d, f"content hashes to {verifier.digest()}"))
        if repair:
            for p in problems:
                with contextlib.suppress(OSError):
                    if p.path.is_dir() and not p.path.is_symlink():
                        import shutil

                        shutil.rmtree(p.path)
                    else:
                        p.path.unlink()
        return problems

    def ingest_offset(self, ref: str) -> int:
        """Bytes a crashed writer left for `ref` (0 if none)."""
        try:
            return (self.ingest_dir / _safe_ref(ref) / "data").stat().st_size
        except FileNotFoundError:
            return 0

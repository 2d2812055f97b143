"""The layer store: each layer unpacked once, keyed by its chain ID, shared.

Layout under ROOT/storage/<driver>/:

    storage.db          layers and snapshots (SQLite, WAL)
    layers/<hex>/diff   one layer (overlay: its own changes; vfs: a full tree)
    l/<short>           overlay only: short links to layers/<hex>/diff
    snapshots/<id>/     a container's (or a view's) upper/work/merged or rootfs
    tmp/                unpacks in progress; a kill -9 leaves only this behind
    locks/              flock files: one per chain ID, tmp dir and snapshot

Everything is made in tmp/ or under a lock and renamed (or recorded) last, so
start-up can tell leftovers (no row, lock free) from work in progress and
remove them.

References: an image holds its top layer (`acquire`/`release`), a layer holds
its parent (by being its child), a snapshot holds its parent layer. `prune`
removes layers nothing holds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from portside import sqlitedb
from portside.errors import (
    AlreadyExists,
    DigestMismatch,
    InUse,
    InvalidArgument,
    NotFound,
    StorageError,
)
from portside.linux.procfs import pid_alive
from portside.oci.digest import Digest
from portside.storage.drivers import Driver, choose_driver
from portside.storage.mounts import Mount, mount_all, unmount_all
from portside.storage.overlay import OverlayDriver, short_link_name
from portside.storage.rmtree import remove_tree
from portside.storage.vfs import VfsDriver

if TYPE_CHECKING:  # the tar machinery and diffs load on use: `run` never needs them
    from portside.storage.apply import ApplyOptions, ApplyResult
    from portside.storage.diff import Change, DiffResult

__all__ = [
    "BlobSource",
    "Layer",
    "LayerStore",
    "LayerWriter",
    "Snapshot",
    "StoreUsage",
    "Usage",
    "chain_of",
]

# a layer blob: an open binary stream, a path, or a callable that opens one
BlobSource = BinaryIO | IO[bytes] | str | os.PathLike[str] | Callable[[], IO[bytes]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT,
    size INTEGER NOT NULL,
    unpacked_size INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    link TEXT NOT NULL,
    refs INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS layers_parent ON layers(parent);
CREATE TABLE IF NOT EXISTS snapshots (
    key TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    parent TEXT,
    readonly INTEGER NOT NULL,
    mounts TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
"""


@dataclass(frozen=True)
class Layer:
    chain_id: Digest
    diff_id: Digest
    parent: Digest | None
    size: int  # bytes of the uncompressed tar
    unpacked_size: int
    entries: int
    path: Path  # the layer's directory (diff)
    link: str  # overlay short link name
    refs: int


@dataclass(frozen=True)
class Snapshot:
    key: str
    parent: Digest | None
    readonly: bool
    path: Path
    mounts: tuple[Mount, ...]


@dataclass(frozen=True)
class Usage:
    size: int  # bytes of disk blocks
    inodes: int


@dataclass(frozen=True)
class StoreUsage:
    driver: str
    layers: int
    layer_bytes: int  # each file counted once, as du does
    snapshots: int
    snapshot_bytes: int


def _volatile(m: Mount) -> Mount:
    """The overlay mount `m` with `volatile` if it has an upper dir (not a read-only view)."""
    if m.type != "overlay" or not any(o.startswith("upperdir=") for o in m.options):
        return m
    return replace(m, options=(*m.options, "volatile"))


def _chain(parent: Digest | None, diff_id: Digest) -> Digest:
    if parent is None:
        return diff_id
    return Digest.from_bytes(f"{parent} {diff_id}".encode())


def chain_of(diff_ids: Sequence[str]) -> Digest:
    """The chain ID of a stack of diffIDs (bottom first): the key of its top layer."""
    top: Digest | None = None
    for d in diff_ids:
        top = _chain(top, Digest.parse(d))
    if top is None:
        raise InvalidArgument("an image needs at least one layer")
    return top


@contextlib.contextmanager
def _open_blob(blob: BlobSource) -> Iterator[IO[bytes]]:
    if isinstance(blob, str | os.PathLike):
        with open(blob, "rb", buffering=0) as f:
            yield f
    elif callable(blob) and not hasattr(blob, "read"):
        with blob() as f:
            yield f
    else:
        yield blob  # type: ignore[misc]


class LayerStore:
    """Layers by chain ID and snapshots by key, over one driver."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        driver: str | None = None,
        *,
        apply_options: ApplyOptions | None = None,
        recover: bool = True,
    ) -> None:
        base = Path(root or os.environ.get("PORTSIDE_ROOT") or "/var/lib/portside")
        self.storage_root = base / "storage"
        self.driver_name = choose_driver(self.storage_root, driver)
        self.driver: Driver = OverlayDriver() if self.driver_name == "overlay" else VfsDriver()
        self.home = self.storage_root / self.driver_name
        self.apply_options = apply_options  # None: ApplyOptions(), made when unpacking
        for sub in ("layers", "l", "snapshots", "tmp", "locks"):
            (self.home / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db_path = self.home / "storage.db"
        self._local = threading.local()
        self._trash: list[tuple[str, int]] = []  # (name in tmp/, its held lock fd)
        self._conn().executescript(_SCHEMA)
        if recover:
            self.recover()

    # ------------------------------------------------------------ plumbing

    def _conn(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlitedb.connect(self._db_path, timeout=60)
            self._local.con = con
        return con

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with sqlitedb.transaction(self._conn()) as con:
            yield con

    @contextlib.contextmanager
    def _lock(self, name: str, blocking: bool = True) -> Iterator[bool]:
        fd = os.open(self.home / "locks" / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    yield False
                    return
                raise
            yield True
        finally:
            os.close(fd)

    def close(self) -> None:
        self.empty_trash()
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # ------------------------------------------------------------ layers

    def layer_dir(self, chain_id: str) -> Path:
        return self.home / "layers" / Digest.parse(chain_id).hex / "diff"

    def _row_to_layer(self, row: tuple[Any, ...]) -> Layer:
        chain, diff, parent, size, unpacked, entries, link, refs = row[:8]
        return Layer(
            chain_id=Digest(str(chain)),
            diff_id=Digest(str(diff)),
            parent=Digest(str(parent)) if parent else None,
            size=int(size),
            unpacked_size=int(unpacked),
            entries=int(entries),
            path=self.layer_dir(str(chain)),
            link=str(link),
            refs=int(refs),
        )

    _COLS = "chain_id, diff_id, parent, size, unpacked_size, entries, link, refs"

    def get(self, chain_id: str) -> Layer | None:
        row = (
            self._conn()
            .execute(f"SELECT {self._COLS} FROM layers WHERE chain_id=?", (str(chain_id),))
            .fetchone()
        )
        return self._row_to_layer(row) if row else None

    def layer(self, chain_id: str) -> Layer:
        found = self.get(chain_id)
        if found is None:
            raise NotFound(f"layer {chain_id} not found in the {self.driver_name} store")
        return found

    def layers(self) -> list[Layer]:
        rows = self._conn().execute(f"SELECT {self._COLS} FROM layers ORDER BY created").fetchall()
        return [self._row_to_layer(r) for r in rows]

    def chain(self, chain_id: str) -> list[Layer]:
        """The layer and its ancestors, top first."""
        out = [self.layer(chain_id)]
        while out[-1].parent is not None:
            out.append(self.layer(out[-1].parent))
        return out

    def _lower_dirs(self, parent: Digest | None) -> list[Path]:
        """Dirs of the parent chain that are already unpacked, top first."""
        out: list[Path] = []
        current = parent
        while current is not None:
            found = self.get(current)
            if found is None:
                break
            out.append(found.path)
            current = found.parent
        return out

    def unpack(
        self,
        diff_id: str | None,
        blob: BlobSource,
        *,
        parent: str | None = None,
        options: ApplyOptions | None = None,
    ) -> Layer:
        """Unpack one layer blob (a stream, e.g. one still downloading; a path;
        or an opener) on top of `parent` (a chain ID). The uncompressed stream
        must hash to `diff_id` (None: whatever it hashes to, as for a commit).
        Done once per chain ID, however many callers ask at the same time."""
        parent_d = Digest.parse(parent) if parent else None
        if parent_d is not None and self.driver_name == "vfs" and self.get(parent_d) is None:
            raise NotFound(f"parent layer {parent_d} is not unpacked")
        if diff_id is None:
            return self._unpack_anonymous(blob, parent_d, options)
        diff = Digest.parse(diff_id)

        def make(tmp: Path) -> ApplyResult:
            result = self._create(blob, tmp, parent_d, options)
            if result.diff_id != diff:
                raise DigestMismatch(diff, result.diff_id, f"layer {diff}")
            return result

        return self._once(_chain(parent_d, diff), parent_d, make)

    def _once(
        self, chain: Digest, parent: Digest | None, make: Callable[[Path], ApplyResult]
    ) -> Layer:
        """The layer `chain`, made by `make(tmp)` into a temp dir and committed only if
        nobody has it yet; once however many callers ask at the same time."""
        found = self.get(chain)
        if found is not None:
            return found
        with self._lock(chain.hex):
            found = self.get(chain)
            if found is not None:
                return found
            with self._tmpdir(chain.hex[:16]) as tmp:
                return self._commit(tmp, chain, parent, make(tmp))

    def _unpack_anonymous(
        self, blob: BlobSource, parent: Digest | None, options: ApplyOptions | None
    ) -> Layer:
        with self._tmpdir("anon") as tmp:
            result = self._create(blob, tmp, parent, options)
            chain = _chain(parent, Digest(result.diff_id))
            with self._lock(chain.hex):
                found = self.get(chain)
                if found is not None:
                    return found
                return self._commit(tmp, chain, parent, result)

    @contextlib.contextmanager
    def _tmpdir(self, prefix: str) -> Iterator[Path]:
        name = f"{prefix}-{os.urandom(6).hex()}"
        tmp = self.home / "tmp" / name
        with self._lock(f"tmp-{name}"):
            tmp.mkdir(mode=0o700)
            try:
                yield tmp
            finally:
                remove_tree(tmp)  # gone already if it was renamed into place
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.home / "locks" / f"tmp-{name}.lock")

    def _create(
        self, blob: BlobSource, tmp: Path, parent: Digest | None, options: ApplyOptions | None
    ) -> ApplyResult:
        from portside.storage.apply import ApplyOptions

        opts = replace(options or self.apply_options or ApplyOptions())
        lowers = self._lower_dirs(parent)
        parent_dir = lowers[0] if lowers else None
        with _open_blob(blob) as stream:
            return self.driver.create_layer(stream, tmp / "diff", parent_dir, lowers, opts)

    def _commit(
        self, tmp: Path, chain: Digest, parent: Digest | None, result: ApplyResult
    ) -> Layer:
        final = self.home / "layers" / chain.hex
        link = short_link_name()
        if final.exists():  # a leftover of a crash between rename and record
            remove_tree(final)
        os.rename(tmp, final)
        if self.driver_name == "overlay":
            os.symlink(f"../layers/{chain.hex}/diff", self.home / "l" / link)
        with self._tx() as db:
            db.execute(
                "INSERT INTO layers VALUES (?,?,?,?,?,?,?,0,?)",
                (
                    chain,
                    result.diff_id,
                    parent,
                    result.size,
                    result.unpacked_size,
                    result.entries,
                    link,
                    time.time(),
                ),
            )
        return self.layer(chain)

    def adopt(
        self,
        diff_id: str,
        directory: str | os.PathLike[str],
        *,
        parent: str | None,
        size: int,
        entries: int,
    ) -> Layer:
        """Record `directory`, an unmounted overlay upper dir, as the layer `diff_id` over
        `parent` by moving it into place instead of unpacking its blob again (a build
        step's changes, whose blob the caller wrote from this very dir). overlay only:
        there a layer is its changes, whiteouts as overlayfs reads them. `size`: bytes
        of the uncompressed tar."""
        if self.driver_name != "overlay":
            raise InvalidArgument("only the overlay driver can adopt a snapshot's changes")
        from portside.storage.apply import ApplyResult, Compression

        parent_d = Digest.parse(parent) if parent else None
        diff = Digest.parse(diff_id)

        def move_in(tmp: Path) -> ApplyResult:
            os.rename(directory, tmp / "diff")
            unpacked = 0
            for dirpath, _dirs, files in os.walk(tmp / "diff"):
                for name in files:
                    st = os.lstat(os.path.join(dirpath, name))
                    if st.st_mode & 0o170000 == 0o100000:
                        unpacked += st.st_size
            return ApplyResult(str(diff), size, entries, unpacked, Compression.NONE)

        return self._once(_chain(parent_d, diff), parent_d, move_in)

    def writer(
        self,
        diff_id: str | None,
        *,
        parent: str | None = None,
        options: ApplyOptions | None = None,
    ) -> LayerWriter:
        """A sink for a download: bytes written to it are unpacked as they come
        (through a pipe, by a thread); `close()` returns the Layer."""
        return LayerWriter(self, diff_id, parent, options)

    def unpack_chain(
        self,
        layers: Sequence[tuple[str, BlobSource]],
        *,
        parallel: int = 4,
        options: ApplyOptions | None = None,
    ) -> list[Layer]:
        """Unpack an image's layers (diffID, blob), bottom first; returns them
        bottom first. overlay layers are independent dirs, so they unpack in
        parallel; vfs layers build on each other, so one after the other."""
        parents: list[Digest | None] = [None]
        for diff_id, _ in layers:
            parents.append(_chain(parents[-1], Digest.parse(diff_id)))
        jobs = [(d, b, parents[i]) for i, (d, b) in enumerate(layers)]
        if self.driver_name != "overlay" or parallel <= 1 or len(jobs) <= 1:
            return [self.unpack(d, b, parent=p, options=options) for d, b, p in jobs]
        from concurrent.futures import ThreadPoolExecutor

        from portside.storage.apply import MissingLinkTarget

        results: list[Layer | None] = [None] * len(jobs)
        retry: list[int] = []
        with ThreadPoolExecutor(min(parallel, len(jobs)), thread_name_prefix="layer") as pool:
            futures = [
                pool.submit(self.unpack, d, b, parent=p, options=options) for d, b, p in jobs
            ]
            for i, fut in enumerate(futures):
                try:
                    results[i] = fut.result()
                except MissingLinkTarget:
                    retry.append(i)  # a hardlink into a lower layer not unpacked yet
        for i in retry:  # now the lower layers are there
            d, b, p = jobs[i]
            results[i] = self.unpack(d, b, parent=p, options=options)
        return [r for r in results if r is not None]

    def acquire(self, chain_id: str) -> None:
        """Hold a layer (an image holds its top layer)."""
        with self._tx() as db:
            cur = db.execute("UPDATE layers SET refs=refs+1 WHERE chain_id=?", (str(chain_id),))
            if cur.rowcount == 0:
                raise NotFound(f"layer {chain_id} not found")

    def release(self, chain_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE layers SET refs=MAX(refs-1,0) WHERE chain_id=?", (str(chain_id),))

    def _holders(self, db: sqlite3.Connection, chain_id: str) -> list[str]:
        out: list[str] = []
        refs = db.execute("SELECT refs FROM layers WHERE chain_id=?", (chain_id,)).fetchone()
        if refs and refs[0]:
            out.append(f"{refs[0]} reference(s)")
        for (child,) in db.execute("SELECT chain_id FROM layers WHERE parent=?", (chain_id,)):
            out.append(f"layer {child}")
        for (key,) in db.execute("SELECT key FROM snapshots WHERE parent=?", (chain_id,)):
            out.append(f"snapshot {key}")
        return out

    def remove_layer(self, chain_id: str) -> None:
        """Remove one layer nothing holds; InUse names what still holds it."""
        chain = Digest.parse(chain_id)
        with self._lock(chain.hex):
            with self._tx() as db:
                row = db.execute("SELECT link FROM layers WHERE chain_id=?", (chain,)).fetchone()
                if row is None:
                    raise NotFound(f"layer {chain} not found")
                holders = self._holders(db, chain)
                if holders:
                    raise InUse(f"layer {chain} is in use by {holders[0]}")
                db.execute("DELETE FROM layers WHERE chain_id=?", (chain,))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.home / "l" / row[0])
            remove_tree(self.home / "layers" / chain.hex)

    def prune(self) -> list[Digest]:
        """Remove every layer nothing holds (repeatedly: parents free up)."""
        removed: list[Digest] = []
        while True:
            rows = (
                self._conn()
                .execute(
                    "SELECT chain_id FROM layers l WHERE refs=0"
                    " AND NOT EXISTS (SELECT 1 FROM layers c WHERE c.parent=l.chain_id)"
                    " AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.parent=l.chain_id)"
                )
                .fetchall()
            )
            if not rows:
                return removed
            for (chain,) in rows:
                with contextlib.suppress(InUse, NotFound):
                    self.remove_layer(chain)
                    removed.append(Digest(chain))

    # ------------------------------------------------------------ snapshots

    def _snap_id(self, key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def _lowers_for_mount(self, parent: Digest | None) -> list[Path]:
        if parent is None:
            return []
        layers = self.chain(parent)
        if self.driver_name == "overlay":
            return [self.home / "l" / layer.link for layer in layers]
        return [layers[0].path]

    def prepare(self, key: str, parent: str | None, *, readonly: bool = False) -> list[Mount]:
        """A new snapshot named `key` over the layer `parent` (a chain ID; None
        for an empty one): its mounts, for the runtime or `mount_all`."""
        if not key:
            raise InvalidArgument("snapshot key must not be empty")
        parent_d = Digest.parse(parent) if parent else None
        sid = self._snap_id(key)
        snap = self.home / "snapshots" / sid
        with self._lock(f"snap-{sid}"):
            if self._snapshot_row(key) is not None:
                raise AlreadyExists(f"snapshot {key!r} already exists")
            lowers = self._lowers_for_mount(parent_d)
            if snap.exists():
                self._remove_snapshot_dir(snap)
            try:
                mounts = self.driver.prepare(snap, lowers, readonly)
                with self._tx() as db:
                    if (
                        parent_d is not None
                        and not db.execute(
                            "SELECT 1 FROM layers WHERE chain_id=?", (parent_d,)
                        ).fetchone()
                    ):
                        raise NotFound(f"layer {parent_d} not found")
                    db.execute(
                        "INSERT INTO snapshots VALUES (?,?,?,?,?,?)",
                        (
                            key,
                            sid,
                            parent_d,
                            int(readonly),
                            json.dumps([m.__dict__ for m in mounts]),
                            time.time(),
                        ),
                    )
            except BaseException:
                self._remove_snapshot_dir(snap)
                raise
        return mounts

    def view(self, key: str, parent: str) -> list[Mount]:
        """A read-only snapshot (for `image mount`)."""
        return self.prepare(key, parent, readonly=True)

    def _snapshot_row(self, key: str) -> tuple[object, ...] | None:
        row: tuple[object, ...] | None = (
            self._conn()
            .execute("SELECT key, id, parent, readonly, mounts FROM snapshots WHERE key=?", (key,))
            .fetchone()
        )
        return row

    def snapshot(self, key: str) -> Snapshot:
        row = self._snapshot_row(key)
        if row is None:
            raise NotFound(f"snapshot {key!r} not found")
        mounts = tuple(
            Mount(m["type"], m["source"], m["target"], tuple(m["options"]))
            for m in json.loads(str(row[4]))
        )
        return Snapshot(
            key=key,
            parent=Digest(str(row[2])) if row[2] else None,
            readonly=bool(row[3]),
            path=self.home / "snapshots" / str(row[1]),
            mounts=mounts,
        )

    def snapshots(self) -> list[Snapshot]:
        keys = [r[0] for r in self._conn().execute("SELECT key FROM snapshots ORDER BY created")]
        return [self.snapshot(k) for k in keys]

    def mounts(self, key: str) -> list[Mount]:
        return list(self.snapshot(key).mounts)

    def upper_dir(self, key: str) -> Path:
        """Where the snapshot's changes are (overlay upper dir; vfs rootfs)."""
        return self.driver.upper(self.snapshot(key).path)

    def mount(self, key: str, *, volatile: bool = False) -> Path:
        """Mount the snapshot at its own `merged` dir (for `image mount`,
        `diff`, `cp`); the runtime may instead mount the specs itself.

        `volatile` (overlay with an upper dir only) is for snapshots thrown away
        after use (`run --rm`): unmounting a normal overlay syncs the whole upper
        filesystem, which on a busy disk took 35 to 400 ms here; a volatile one
        skips that (kernel 5.10+; older kernels get a normal mount)."""
        snap = self.snapshot(key)
        target = snap.path / "merged"
        from portside.storage.mounts import is_mountpoint

        if not is_mountpoint(target):
            # the kernel leaves this marker after a volatile mount and refuses to mount
            # the dirs again while it exists; only throw-away snapshots carry it
            marker = snap.path / "work" / "work" / "incompat" / "volatile"
            if marker.exists():
                remove_tree(marker.parent)
            mounts = snap.mounts
            if volatile and self.driver_name == "overlay":
                mounts = tuple(_volatile(m) for m in mounts)
                try:
                    mount_all(mounts, target)
                    return target
                except StorageError:
                    mounts = snap.mounts  # an older kernel: no such option
            mount_all(mounts, target)
        return target

    def unmount(self, key: str) -> None:
        unmount_all(self.snapshot(key).path / "merged")

    def remove_snapshot(self, key: str) -> None:
        """Unmount whatever is mounted in the snapshot's dir, remove it, and
        drop its hold on its parent layer."""
        sid = self._snap_id(key)
        with self._lock(f"snap-{sid}"):
            row = self._snapshot_row(key)
            if row is None:
                raise NotFound(f"snapshot {key!r} not found")
            snap = self.home / "snapshots" / sid
            if snap.exists():
                unmount_all(snap)
                self.discard(snap)
            with self._tx() as db:
                db.execute("DELETE FROM snapshots WHERE key=?", (key,))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.home / "locks" / f"snap-{sid}.lock")

    def discard(self, path: str | os.PathLike[str]) -> None:
        """Make the tree `path` vanish at once and delete it later (`empty_trash`, or
        `close`): it is renamed into tmp/ under a held tmp lock, so a kill -9 leaves a
        leftover that `recover` removes. Deleting a tree costs 0.5 to 3 ms per directory
        on this machine's disk (`run --rm` had ~10 of them); a rename is one step. A tree
        on another filesystem is deleted now."""
        name = f"trash-{os.urandom(6).hex()}"
        lock = self.home / "locks" / f"tmp-{name}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(path, self.home / "tmp" / name)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            if exc.errno == errno.ENOENT:
                return
            remove_tree(path)  # another filesystem (EXDEV) or not renamable
            return
        self._trash.append((name, fd))

    def empty_trash(self) -> None:
        """Delete what `discard` set aside (in this process)."""
        self.take_trash()()

    def take_trash(self) -> Callable[[], None]:
        """What `discard` set aside, as a deletion to run later (it needs no connection)."""
        trash, self._trash = self._trash, []
        home = self.home

        def empty() -> None:
            while trash:
                name, fd = trash.pop()
                try:
                    remove_tree(home / "tmp" / name)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(home / "locks" / f"tmp-{name}.lock")
                finally:
                    os.close(fd)

        return empty

    remove = remove_snapshot  # the snapshotter verb

    def mount_image(self, chain_id: str) -> Path:
        """A read-only merged tree of an image's layers, mounted; the same path
        for every caller until `unmount_image` (`portside image mount`)."""
        key = f"image-mount:{Digest.parse(chain_id)}"
        if self._snapshot_row(key) is None:
            with contextlib.suppress(AlreadyExists):
                self.view(key, chain_id)
        return self.mount(key)

    def unmount_image(self, chain_id: str) -> None:
        key = f"image-mount:{Digest.parse(chain_id)}"
        if self._snapshot_row(key) is not None:
            self.remove_snapshot(key)

    def _remove_snapshot_dir(self, snap: Path) -> None:
        if not snap.exists():
            return
        unmount_all(snap)
        remove_tree(snap)

    # ------------------------------------------------------------ diffs

    def changes(self, key: str) -> list[Change]:
        """What the snapshot changed against its parent (`portside diff`)."""
        from portside.storage.diff import changes_overlay, changes_trees

        snap = self.snapshot(key)
        upper = self.driver.upper(snap.path)
        lowers = self._lower_dirs(snap.parent)
        if self.driver_name == "overlay":
            return changes_overlay(upper, lowers)
        return changes_trees(lowers[0] if lowers else None, upper)

    def diff(self, key: str, out: IO[bytes], compression: str = "gzip") -> DiffResult:
        """The snapshot's changes as a layer blob written to `out`."""
        from portside.storage.diff import write_diff_overlay, write_diff_trees

        snap = self.snapshot(key)
        upper = self.driver.upper(snap.path)
        if self.driver_name == "overlay":
            return write_diff_overlay(upper, out, compression)
        lowers = self._lower_dirs(snap.parent)
        return write_diff_trees(lowers[0] if lowers else None, upper, out, compression)

    def commit(
        self, key: str, blob_path: str | os.PathLike[str], compression: str = "gzip"
    ) -> tuple[DiffResult, Layer]:
        """Write the snapshot's changes to `blob_path` (atomically) and add them
        to the store as a layer over the snapshot's parent (`portside commit`);
        the caller puts the blob into the content store."""
        snap = self.snapshot(key)
        dest = Path(blob_path)
        tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as out:
                result = self.diff(key, out, compression)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        layer = self.unpack(result.diff_id, dest, parent=snap.parent)
        return result, layer

    def df(self) -> StoreUsage:
        """What `portside system df` shows: layers counted once however many
        images and containers share them, and the containers' own changes."""
        layers = _disk_usage(self.home / "layers")
        snaps = _disk_usage(self.home / "snapshots")
        return StoreUsage(
            driver=self.driver_name,
            layers=len(self.layers()),
            layer_bytes=layers.size,
            snapshots=len(self.snapshots()),
            snapshot_bytes=snaps.size,
        )

    def usage(self, key: str | None = None) -> Usage:
        """Disk use of one snapshot's own changes, or of the whole store."""
        return _disk_usage(self.upper_dir(key) if key is not None else self.home)

    # ------------------------------------------------------------ recovery

    def recover(self) -> list[str]:
        """Remove what a crash left: temp dirs nobody is writing, layer and
        snapshot dirs with no record, dangling links. Returns what went."""
        removed: list[str] = []
        for entry in sorted((self.home / "tmp").iterdir()):
            with self._lock(f"tmp-{entry.name}", blocking=False) as free:
                if free:
                    unmount_all(entry)
                    remove_tree(entry)
                    removed.append(str(entry))
            if free:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.home / "locks" / f"tmp-{entry.name}.lock")
        known = {Digest(c).hex for (c,) in self._conn().execute("SELECT chain_id FROM layers")}
        for entry in sorted((self.home / "layers").iterdir()):
            if entry.name in known:
                continue
            with self._lock(entry.name, blocking=False) as free:
                if free and entry.name not in {
                    Digest(c).hex for (c,) in self._conn().execute("SELECT chain_id FROM layers")
                }:
                    remove_tree(entry)
                    removed.append(str(entry))
        sids = {str(r[0]) for r in self._conn().execute("SELECT id FROM snapshots")}
        for entry in sorted((self.home / "snapshots").iterdir()):
            if entry.name in sids:
                continue
            with self._lock(f"snap-{entry.name}", blocking=False) as free:
                if (
                    free
                    and self._conn()
                    .execute("SELECT 1 FROM snapshots WHERE id=?", (entry.name,))
                    .fetchone()
                    is None
                ):
                    self._remove_snapshot_dir(entry)
                    removed.append(str(entry))
        links = {str(r[0]) for r in self._conn().execute("SELECT link FROM layers")}
        for entry in (self.home / "l").iterdir():
            if entry.name not in links and not entry.exists():
                entry.unlink(missing_ok=True)  # another process recovering may be first
                removed.append(str(entry))
        for entry in self.storage_root.glob("probe-*"):
            if _prober_alive(entry.name):
                continue  # a live process is probing overlay there right now
            with contextlib.suppress(OSError, StorageError):
                unmount_all(entry)
                remove_tree(entry)
        return removed


def _prober_alive(name: str) -> bool:
    """Whether the process a `probe-PID` directory is named after still runs.

    Its probe must be left alone: taken away mid-probe, it finds overlay "not
    working" and the store would settle on vfs for good (probe.json)."""
    pid = name.removeprefix("probe-")
    return pid.isdigit() and pid_alive(int(pid))


class LayerWriter:
    """Unpack while downloading: write the blob's bytes, then close()."""

    def __init__(
        self,
        store: LayerStore,
        diff_id: str | None,
        parent: str | None,
        options: ApplyOptions | None,
    ) -> None:
        r, w = os.pipe()
        self._reader = os.fdopen(r, "rb", buffering=0)
        self._sink = os.fdopen(w, "wb", buffering=1 << 20)
        self._layer: Layer | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._layer = store.unpack(diff_id, self._reader, parent=parent, options=options)
            except BaseException as e:
                self._error = e
            finally:
                self._reader.close()

        self._thread = threading.Thread(target=run, name="layer-writer", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        try:
            self._sink.write(data)
        except BrokenPipeError:
            self._thread.join()
            if self._error is not None:
                raise self._error from None
            raise
        return len(data)

    def close(self) -> Layer:
        """Finish the stream and wait for the unpack; raises what it raised."""
        with contextlib.suppress(BrokenPipeError):
            self._sink.close()
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._layer is not None
        return self._layer

    def abort(self) -> None:
        """Give up (a failed download): the unpack sees a truncated stream and
        removes its temp dir."""
        with contextlib.suppress(OSError):
            self._sink.close()
        self._thread.join()

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.abort()


def _disk_usage(path: Path) -> Usage:
    """Blocks and inodes under `path`, each inode counted once (as du does)."""
    seen: set[tuple[int, int]] = set()
    size = 0
    dev = os.lstat(path).st_dev
    stack = [str(path)]
    while stack:
        current = stack.pop()
        st = os.lstat(current)
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            size += st.st_blocks * 512
        if os.path.isdir(current) and not os.path.islink(current) and st.st_dev == dev:
            with os.scandir(current) as it:
                stack.extend(e.path for e in it)
    return Usage(size=size, inodes=len(seen))

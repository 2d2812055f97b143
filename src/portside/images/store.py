"""The image store: which manifests are images, and which names point at them.

Metadata lives in SQLite (WAL) at ROOT/portside.db; the bytes live in the
content store. An image is a platform manifest (keyed by its digest); its ID is
its config digest, as docker and podman show it. A name may also remember the
index it was pulled through, so `RepoDigests` shows what the registry serves.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside import sqlitedb
from portside.content import ContentStore
from portside.errors import InUse, InvalidArgument, InvalidReference, NotFound
from portside.oci.digest import Digest
from portside.oci.reference import parse_reference

__all__ = [
    "ImageRecord",
    "ImageStore",
    "register_in_use_check",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    manifest_digest TEXT PRIMARY KEY,
    config_digest   TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    created         TEXT,
    size            INTEGER NOT NULL,
    architecture    TEXT,
    os              TEXT,
    added           REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_config ON images(config_digest);
CREATE TABLE IF NOT EXISTS image_names (
    name            TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL REFERENCES images(manifest_digest) ON DELETE CASCADE,
    index_digest    TEXT
);
CREATE INDEX IF NOT EXISTS image_names_manifest ON image_names(manifest_digest);
CREATE TABLE IF NOT EXISTS image_digests (
    repo            TEXT NOT NULL,
    digest          TEXT NOT NULL,
    manifest_digest TEXT NOT NULL REFERENCES images(manifest_digest) ON DELETE CASCADE,
    PRIMARY KEY (repo, digest, manifest_digest)
);
CREATE TABLE IF NOT EXISTS image_indexes (
    index_digest    TEXT PRIMARY KEY,
    media_type      TEXT NOT NULL
);
"""

_HEX_PREFIX = re.compile(r"(?:sha256:)?([a-f0-9]{3,64})")

# Checks that say who still uses an image (the engine registers "container X").
InUseCheck = Callable[["ImageRecord"], str | None]
_in_use_checks: list[InUseCheck] = []


def register_in_use_check(check: InUseCheck) -> None:
    """Let a higher layer veto removal: `check(image)` returns who uses it, or None."""
    if check not in _in_use_checks:
        _in_use_checks.append(check)


@dataclass
class ImageRecord:
    manifest_digest: Digest
    config_digest: Digest
    media_type: str
    created: str | None
    size: int
    architecture: str | None
    os: str | None
    added: float
    names: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # repo@digest
    index_digests: dict[str, str] = field(default_factory=dict)  # name -> index digest

    @property
    def id(self) -> str:
        """The image ID: config digest hex, as docker and podman print it."""
        return self.config_digest.hex

    @property
    def short_id(self) -> str:
        return self.config_digest.hex[:12]


def normalize_name(name: str) -> str:
    """`busybox` -> `docker.io/library/busybox:latest`; the form names are stored in."""
    ref = parse_reference(name)
    return str(ref)


class ImageStore:
    """Images over a content store; one per state root, safe across processes (WAL)."""

    def __init__(self, root: Path | str, content: ContentStore | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.content = content or ContentStore(self.root / "content")
        self._lock = threading.RLock()
        self._db = sqlitedb.connect(self.root / "portside.db", timeout=30, threads=True)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            sqlitedb.ensure_schema(self._db, "image_indexes", _SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, sqlitedb.transaction(self._db) as db:
            yield db

    # -- writing ---------------------------------------------------------------------
    def add_image(self, manifest_digest: Digest | str, media_type: str) -> ImageRecord:
        """Record a platform manifest already in the content store as an image."""
        md = Digest.parse(manifest_digest)
        manifest = _load_json(self.content.read_bytes(md), f"manifest {md}")
        config_desc = manifest.get("config")
        if not isinstance(config_desc, dict) or "digest" not in config_desc:
            raise InvalidArgument(f"manifest {md} has no config")
        cd = Digest.parse(config_desc["digest"])
        size = int(config_desc.get("size", 0)) + sum(
            int(layer.get("size", 0)) for layer in manifest.get("layers", []) or []
        )
        try:
            config = _load_json(self.content.read_bytes(cd), f"config {cd}")
        except NotFound:
            config = {}
        created = config.get("created") if isinstance(config.get("created"), str) else None
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,?,?,?)",
                (
                    md,
                    cd,
                    media_type,
                    created,
                    size,
                    config.get("architecture"),
                    config.get("os"),
                    time.time(),
                ),
            )
        return self.get_by_digest(md)

    def add_index(self, index_digest: Digest | str, media_type: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO image_indexes VALUES (?,?)", (str(index_digest), media_type)
            )

    def set_name(
        self, name: str, manifest_digest: Digest | str, index_digest: Digest | str | None = None
    ) -> None:
        """Point `name` (repo:tag) at an image, taking it from any other image."""
        full = normalize_name(name)
        ref = parse_reference(full)
        if ref.digest is not None:
            raise InvalidReference(f"cannot tag with a digest reference {name!r}")
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO image_names VALUES (?,?,?)",
                (full, str(manifest_digest), str(index_digest) if index_digest else None),
            )

    def add_digest(self, repo: str, digest: Digest | str, manifest_digest: Digest | str) -> None:
        """Remember `repo@digest` (what the registry serves) for RepoDigests and lookups."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO image_digests VALUES (?,?,?)",
                (repo, str(digest), str(manifest_digest)),
            )

    # -- reading ---------------------------------------------------------------------
    def _record(self, row: sqlite3.Row) -> ImageRecord:
        rec = ImageRecord(
            manifest_digest=Digest(row["manifest_digest"]),
            config_digest=Digest(row["config_digest"]),
            media_type=row["media_type"],
            created=row["created"],
            size=row["size"],
            architecture=row["architecture"],
            os=row["os"],
            added=row["added"],
        )
        for n in self._db.execute(
            "SELECT name, index_digest FROM image_names WHERE manifest_digest=? ORDER BY name",
            (rec.manifest_digest,),
        ):
            rec.names.append(n["name"])
            if n["index_digest"]:
                rec.index_digests[n["name"]] = n["index_digest"]
        for d in self._db.execute(
            "SELECT repo, digest FROM image_digests WHERE manifest_digest=? ORDER BY repo, digest",
            (rec.manifest_digest,),
        ):
            rec.digests.append(f"{d['repo']}@{d['digest']}")
        return rec

    def images(self) -> list[ImageRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM images ORDER BY added DESC").fetchall()
            return [self._record(r) for r in rows]

    def get_by_digest(self, manifest_digest: Digest | str) -> ImageRecord:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM images WHERE manifest_digest=?", (str(manifest_digest),)
            ).fetchone()
            if row is None:
                raise NotFound(f"image {manifest_digest} not known")
            return self._record(row)

    def lookup(self, text: str) -> ImageRecord | None:
        """An image by name, repo@digest, ID, manifest digest or unique ID prefix."""
        with self._lock:
            return self._lookup(text)

    def _lookup(self, text: str) -> ImageRecord | None:
        db = self._db
        m = _HEX_PREFIX.fullmatch(text)
        if m:
            prefix = m.group(1)
            rows = db.execute(
                "SELECT * FROM images WHERE substr(config_digest, 8) LIKE ? "
                "OR substr(manifest_digest, 8) LIKE ? ORDER BY added DESC",
                (prefix + "%", prefix + "%"),
            ).fetchall()
            ids = {r["config_digest"] for r in rows}
            if len(ids) > 1:
                raise InvalidArgument(f"image ID prefix {text!r} is ambiguous")
            if rows:
                return self._record(rows[0])
        for name in _name_variants(text):
            ref = parse_reference(name)
            if ref.digest is not None:
                row = db.execute(
                    "SELECT i.* FROM images i JOIN image_digests d "
                    "ON d.manifest_digest=i.manifest_digest "
                    "WHERE d.repo=? AND (d.digest=? OR i.manifest_digest=?)",
                    (ref.name, ref.digest, ref.digest),
                ).fetchone()
                if row is None:
                    row = db.execute(
                        "SELECT i.* FROM images i JOIN image_names n "
                        "ON n.manifest_digest=i.manifest_digest "
                        "WHERE n.name LIKE ? AND (i.manifest_digest=? OR n.index_digest=?)",
                        (ref.name + ":%", ref.digest, ref.digest),
                    ).fetchone()
            else:
                row = db.execute(
                    "SELECT i.* FROM images i JOIN image_names n "
                    "ON n.manifest_digest=i.manifest_digest WHERE n.name=?",
                    (str(ref),),
                ).fetchone()
            if row is not None:
                return self._record(row)
        return None

    def get(self, text: str) -> ImageRecord:
        try:
            rec = self.lookup(text)
        except InvalidReference:
            raise NotFound(f"image not known: {text}") from None
        if rec is None:
            raise NotFound(f"image not known: {text}")
        return rec

    def manifest(self, rec: ImageRecord) -> dict[str, Any]:
        """The image's manifest document (verified read from the content store)."""
        return _load_json(self.content.read_bytes(rec.manifest_digest), f"manifest {rec.id}")

    def config(self, rec: ImageRecord) -> dict[str, Any]:
        """The image's config document (Env, Cmd, rootfs.diff_ids, ...)."""
        return _load_json(self.content.read_bytes(rec.config_digest), f"config {rec.id}")

    def layers(self, rec: ImageRecord) -> list[dict[str, Any]]:
        """Layer descriptors, bottom first; blobs are at `content.blob_path(digest)`."""
        layers = self.manifest(rec).get("layers") or []
        return [d for d in layers if isinstance(d, dict)]

    def indexes(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT index_digest FROM image_indexes")]

    def roots(self) -> list[str]:
        """What GC must keep: every image manifest and every index a name still uses."""
        with self._lock:
            out = [r[0] for r in self._db.execute("SELECT manifest_digest FROM images")]
            out += [
                r[0]
                for r in self._db.execute(
                    "SELECT index_digest FROM image_names WHERE index_digest IS NOT NULL"
                )
            ]
            out += [
                r[0]
                for r in self._db.execute(
                    "SELECT d.digest FROM image_digests d JOIN image_indexes x "
                    "ON x.index_digest=d.digest"
                )
            ]
            return out

    # -- tags and removal ------------------------------------------------------------
    def tag(self, source: str, target: str) -> ImageRecord:
        rec = self.get(source)
        index = None
        for n, idx in rec.index_digests.items():
            if source in (n,) or normalize_name_safe(source) == n:
                index = idx
        self.set_name(target, rec.manifest_digest, index)
        return self.get_by_digest(rec.manifest_digest)

    def untag(self, name: str) -> ImageRecord:
        full = normalize_name_safe(name)
        with self._tx() as db:
            row = db.execute(
                "SELECT manifest_digest FROM image_names WHERE name=?", (full,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no image is tagged {name}")
            db.execute("DELETE FROM image_names WHERE name=?", (full,))
        return self.get_by_digest(row[0])

    def users(self, rec: ImageRecord) -> list[str]:
        out = []
        for check in list(_in_use_checks):
            who = check(rec)
            if who:
                out.append(who)
        return out

    def remove(self, text: str, force: bool = False) -> tuple[list[str], list[str]]:
        """`rmi`: untag a name, or delete the image; returns (untagged, deleted IDs).

        By name with other names left, only the name goes (as docker does). By ID
        with several names, or while in use, it is refused unless `force`.
        """
        rec = self.get(text)
        untagged: list[str] = []
        full = normalize_name_safe(text)
        by_name = full in rec.names
        if by_name and len(rec.names) > 1:
            self.untag(full)
            return [full], []
        if not by_name and len(rec.names) > 1 and not force:
            raise InUse(
                f"image {rec.short_id} is referenced in multiple names "
                f"({', '.join(rec.names)}); remove by name or use --force"
            )
        users = self.users(rec)
        if users and not force:
            raise InUse(f"image {rec.short_id} is in use by {', '.join(users)}")
        untagged = list(rec.names)
        with self._tx() as db:
            db.execute("DELETE FROM image_names WHERE manifest_digest=?", (rec.manifest_digest,))
            db.execute("DELETE FROM image_digests WHERE manifest_digest=?", (rec.manifest_digest,))
            db.execute("DELETE FROM images WHERE manifest_digest=?", (rec.manifest_digest,))
            self._drop_unused_indexes(db)
        return untagged, [rec.id]

    def _drop_unused_indexes(self, db: sqlite3.Connection) -> None:
        db.execute(
            "DELETE FROM image_indexes WHERE index_digest NOT IN "
            "(SELECT index_digest FROM image_names WHERE index_digest IS NOT NULL) "
            "AND index_digest NOT IN (SELECT digest FROM image_digests)"
        )

    def prune(self, all_images: bool = False) -> list[ImageRecord]:
        """Remove dangling images (no name), or with `all_images` every unused one."""
        removed: list[ImageRecord] = []
        siblings = set() if all_images else self.index_children()
        for rec in self.images():
            if rec.names and not all_images:
                continue
            if str(rec.manifest_digest) in siblings:
                continue  # another platform of a named multi-platform image
            if self.users(rec):
                continue
            with self._tx() as db:
                db.execute(
                    "DELETE FROM image_names WHERE manifest_digest=?", (rec.manifest_digest,)
                )
                db.execute(
                    "DELETE FROM image_digests WHERE manifest_digest=?", (rec.manifest_digest,)
                )
                db.execute("DELETE FROM images WHERE manifest_digest=?", (rec.manifest_digest,))
                self._drop_unused_indexes(db)
            removed.append(rec)
        return removed

    def index_children(self) -> set[str]:
        """Manifest digests listed by the indexes that names point at."""
        with self._lock:
            indexes = [
                r[0]
                for r in self._db.execute(
                    "SELECT DISTINCT index_digest FROM image_names WHERE index_digest IS NOT NULL"
                )
            ]
        out: set[str] = set()
        for digest in indexes:
            try:
                doc = _load_json(self.content.read_bytes(digest), f"index {digest}")
            except (NotFound, InvalidArgument):
                continue
            for entry in doc.get("manifests") or []:
                if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                    out.add(entry["digest"])
        return out

    def gc(self, keep_ingests: bool = True) -> Any:
        """Drop blobs no image (and no live lease) reaches."""
        return self.content.gc(self.roots, keep_ingests=keep_ingests)

    def check(self, repair: bool = False) -> list[str]:
        """Records whose blobs are missing or broken; with `repair`, forget those images."""
        problems: list[str] = []
        broken: list[ImageRecord] = []
        for rec in self.images():
            missing = []
            try:
                manifest = _load_json(self.content.read_bytes(rec.manifest_digest), "manifest")
                needed = [manifest.get("config", {}).get("digest")] + [
                    layer.get("digest") for layer in manifest.get("layers", []) or []
                ]
                missing = [d for d in needed if not d or not self.content.has(d)]
            except Exception as err:
                missing = [f"{rec.manifest_digest} ({err})"]
            if missing:
                label = rec.names[0] if rec.names else rec.short_id
                problems.append(f"image {label}: missing or broken blobs: {', '.join(missing)}")
                broken.append(rec)
        if repair:
            for rec in broken:
                with self._tx() as db:
                    db.execute("DELETE FROM images WHERE manifest_digest=?", (rec.manifest_digest,))
                    self._drop_unused_indexes(db)
        return problems


def normalize_name_safe(text: str) -> str:
    try:
        return normalize_name(text)
    except InvalidReference:
        return text


def _name_variants(text: str) -> list[str]:
    """`busybox` matches `docker.io/library/busybox:latest` and `localhost/busybox:latest`."""
    out: list[str] = []
    try:
        raw = parse_reference(text, normalize=False)
    except InvalidReference:
        return out
    out.append(text)
    if not raw.domain:
        out.append(f"localhost/{text}")
    return out


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return doc

"""The build cache: what each step produced, keyed by everything that decides it.

A key chains the parent step's key (ultimately the base image's config digest),
the instruction with its variables expanded, and for COPY/ADD the content hash of
the files copied, so an unchanged step anywhere in a build maps to one row. The
value is the image state after the step (config document and layer descriptors);
the layer blobs live in the content store and the unpacked layers in the layer
store, and a hit is used only when both are still there.

SQLite (WAL) under ROOT/build/, so a killed build leaves either a whole row or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from portside import sqlitedb

_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS build_file_digests2 (
    path TEXT PRIMARY KEY,
    stat TEXT NOT NULL,
    digest BLOB NOT NULL,
    hashed INTEGER NOT NULL
);
"""
RACY_NS = 2_000_000_000


def step_key(parent: str, *parts: Any) -> str:
    """sha256 over the parent key and the step's canonical JSON description."""
    h = hashlib.sha256(parent.encode())
    h.update(b"\0")
    h.update(json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode())
    return h.hexdigest()


class BuildCache:
    """key -> image state after the step, persistent across builds."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root) / "build"
        path.mkdir(parents=True, exist_ok=True)
        self._db = sqlitedb.connect(path / "cache.db", timeout=60)
        sqlitedb.ensure_schema(self._db, "build_file_digests2", _SCHEMA)
        self._pending: list[tuple[str, str, bytes, int]] = []

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT state FROM build_cache WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, state: dict[str, Any]) -> None:
        text = json.dumps(state, sort_keys=True, separators=(",", ":"))
        with sqlitedb.transaction(self._db) as db:
            db.execute(
                "INSERT OR REPLACE INTO build_cache VALUES (?,?,?)", (key, text, time.time())
            )

    def file_digest(self, path: str, st: os.stat_result) -> bytes:
        """A context file's sha256, read again only when its stat changed (device, inode,
        size, mtime and ctime: any write moves ctime), as buildkit caches them.

        File times tick coarsely (a few ms), so a write right after the file was hashed
        may leave its stat as it was: a digest taken within RACY_NS of the file's last
        change is not trusted (git's "racy" rule) and the file is read again."""
        from portside.build.context import sha256_file

        sig = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
        row = self._db.execute(
            "SELECT stat, digest, hashed FROM build_file_digests2 WHERE path=?", (path,)
        ).fetchone()
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        if row is not None and row[0] == sig and int(row[2]) - changed > RACY_NS:
            return bytes(row[1])
        hashed = time.time_ns()
        digest = sha256_file(path)
        self._pending.append((path, sig, digest, hashed))
        return digest

    def flush(self) -> None:
        """Write the file digests learnt since the last flush, in one transaction."""
        if not self._pending:
            return
        with sqlitedb.transaction(self._db) as db:
            db.executemany(
                "INSERT OR REPLACE INTO build_file_digests2 VALUES (?,?,?,?)", self._pending
            )
        self._pending = []

    def drop(self, key: str) -> None:
        with sqlitedb.transaction(self._db) as db:
            db.execute("DELETE FROM build_cache WHERE key=?", (key,))

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._db.close()

"""Container and volume records in SQLite (WAL), in the root's portside.db.

One JSON document per container keeps the schema small; the name is a
column with a UNIQUE constraint so two racing `create --name x` cannot both win.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from portside import sqlitedb
from portside.errors import AlreadyExists, InvalidArgument, NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    doc TEXT NOT NULL
);
"""


class StateDB:
    """Records of containers and volumes; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlitedb.connect(path, timeout=60, threads=True)
        with self._lock:
            sqlitedb.ensure_schema(self._db, "volumes", _SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, sqlitedb.transaction(self._db) as db:
            yield db

    # -- containers

    def add(self, cid: str, name: str, created: float, doc: dict[str, Any]) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO containers VALUES (?,?,?,?)", (cid, name, created, json.dumps(doc))
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(
                f'the container name "{name}" is already in use; '
                "remove or rename that container to reuse the name"
            ) from None

    def get(self, cid: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM containers WHERE id=?", (cid,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def update(self, cid: str, **fields: Any) -> dict[str, Any]:
        """Merge fields into the document under one write transaction."""
        with self._tx() as db:
            row = db.execute("SELECT doc FROM containers WHERE id=?", (cid,)).fetchone()
            if row is None:
                raise NotFound(f"no such container: {cid}")
            doc = dict(json.loads(row[0]))
            doc.update(fields)
            db.execute(
                "UPDATE containers SET doc=?, name=? WHERE id=?",
                (json.dumps(doc), doc["name"], cid),
            )
        return doc

    def rename(self, cid: str, name: str) -> None:
        try:
            with self._tx() as db:
                row = db.execute("SELECT doc FROM containers WHERE id=?", (cid,)).fetchone()
                if row is None:
                    raise NotFound(f"no such container: {cid}")
                doc = dict(json.loads(row[0]))
                doc["name"] = name
                db.execute(
                    "UPDATE containers SET doc=?, name=? WHERE id=?", (json.dumps(doc), name, cid)
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f'the container name "{name}" is already in use') from None

    def delete(self, cid: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM containers WHERE id=?", (cid,))

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT doc FROM containers ORDER BY created").fetchall()
        return [dict(json.loads(r[0])) for r in rows]

    def resolve(self, ref: str) -> str:
        """Full ID from a name, an ID or a unique ID prefix."""
        if not ref:
            raise InvalidArgument("container name or ID must not be empty")
        with self._lock:
            row = self._db.execute("SELECT id FROM containers WHERE name=?", (ref,)).fetchone()
            if row is not None:
                return str(row[0])
            if all(c in "0123456789abcdef" for c in ref):
                rows = self._db.execute(
                    "SELECT id FROM containers WHERE id LIKE ?", (ref + "%",)
                ).fetchall()
                if len(rows) == 1:
                    return str(rows[0][0])
                if len(rows) > 1:
                    raise InvalidArgument(f"container ID prefix {ref!r} is ambiguous")
        raise NotFound(f"no such container: {ref}")

    # -- volumes

    def add_volume(self, name: str, created: float, doc: dict[str, Any]) -> bool:
        """False if it exists already (creation is idempotent for `-v name:/dst`)."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM volumes WHERE name=?", (name,)).fetchone():
                return False
            db.execute("INSERT INTO volumes VALUES (?,?,?)", (name, created, json.dumps(doc)))
        return True

    def volume(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM volumes WHERE name=?", (name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def update_volume(self, name: str, **fields: Any) -> None:
        with self._tx() as db:
            row = db.execute("SELECT doc FROM volumes WHERE name=?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no such volume: {name}")
            doc = dict(json.loads(row[0]))
            doc.update(fields)
            db.execute("UPDATE volumes SET doc=? WHERE name=?", (json.dumps(doc), name))

    def volumes(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT doc FROM volumes ORDER BY created").fetchall()
        return [dict(json.loads(r[0])) for r in rows]

    def delete_volume(self, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM volumes WHERE name=?", (name,))

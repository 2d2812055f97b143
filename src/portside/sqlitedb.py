"""The SQLite plumbing every store shares: WAL, busy timeouts, schema, transactions.

The image store, the layer store and the engine's state each keep a small SQLite
database (the image store and the engine share `portside.db`); they open it, create
their tables and run write transactions the same way, so a killed process never
leaves a half-written record and concurrent CLI calls wait instead of failing.

Keeping the WAL on close: SQLite checkpoints the WAL into the database, fsyncs it and
deletes the log when the last connection closes; the next writer then recreates the log
and fsyncs its directory. A CLI call is one short process, so every `portside run` paid
that twice per database (about 10 ms each on this machine's ext4) for nothing: with
synchronous=NORMAL a commit is durable once it is in the WAL, and SQLite's own auto-
checkpoint (every 1000 pages) still bounds the log. Python 3.11's sqlite3 has no
`setconfig`, so this asks the library itself through ctypes, and does nothing unless the
handle it found is verifiably that connection's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

from portside.errors import StorageError

_NO_CKPT_ON_CLOSE = 1006  # SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE (SQLite 3.16+)
_HANDLE_OFFSET = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)  # PyObject_HEAD


@cache
def _library() -> Any:
    try:
        import _sqlite3

        lib = ctypes.CDLL(_sqlite3.__file__)
        lib.sqlite3_db_filename.restype = ctypes.c_char_p
        lib.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.sqlite3_db_config.restype = ctypes.c_int
    except (ImportError, OSError, AttributeError):
        return None
    return lib


def keep_wal_on_close(con: sqlite3.Connection, path: str) -> bool:
    """Skip the checkpoint on close for `con` (opened on `path`); False if not possible."""
    if sqlite3.sqlite_version_info < (3, 16, 0):
        return False
    setconfig = getattr(con, "setconfig", None)  # Python 3.12+
    if setconfig is not None and hasattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE"):
        setconfig(sqlite3.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, True)
        return True
    if sys.version_info[:2] != (3, 11):  # the handle's place below is 3.11's
        return False
    lib = _library()
    if lib is None:
        return False
    handle = ctypes.c_void_p.from_address(id(con) + _HANDLE_OFFSET).value
    if not handle:
        return False
    # the pointer is the connection's only if SQLite itself names the same file through it
    name = lib.sqlite3_db_filename(ctypes.c_void_p(handle), b"main")
    wanted = {os.path.abspath(path), os.path.realpath(path)}
    if name is None or os.fsdecode(name) not in wanted:
        return False
    out = ctypes.c_int(0)
    rc = lib.sqlite3_db_config(
        ctypes.c_void_p(handle), ctypes.c_int(_NO_CKPT_ON_CLOSE), ctypes.c_int(1), ctypes.byref(out)
    )
    return rc == 0 and out.value == 1


def connect(
    path: str | os.PathLike[str], *, timeout: float = 60.0, threads: bool = False
) -> sqlite3.Connection:
    """Open `path` in WAL mode with synchronous=NORMAL (a killed process loses no commit;
    only a power cut may drop the last ones) and the log kept on close. `threads`
    allows use from several threads; callers then serialise writes with a lock.

    Opening can meet SQLITE_BUSY that SQLite does not hand to the busy handler (a journal
    mode change, or reading the WAL index while another process rewrites it), so the
    opening steps are retried here until `timeout`; after that, one StorageError names
    the file."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        db = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=not threads
        )
        try:
            db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            # the mode is kept in the file: switch only a database not yet in WAL mode
            if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as err:
            db.close()
            if not _is_busy(err):
                raise StorageError(f"{os.fspath(path)}: {err}") from err
            if time.monotonic() >= deadline:
                raise StorageError(f"{os.fspath(path)}: {err} (waited {timeout:g}s)") from err
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
            continue
        keep_wal_on_close(db, os.fspath(path))  # no checkpoint + fsync per CLI call
        return db


def _is_busy(err: sqlite3.OperationalError) -> bool:
    text = str(err)
    return "locked" in text or "busy" in text


def ensure_schema(db: sqlite3.Connection, marker_table: str, schema: str) -> None:
    """Create a component's tables unless `marker_table` exists (a file may hold several
    components' tables, so look for ours rather than at user_version)."""
    have = db.execute(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?", (marker_table,)
    ).fetchone()[0]
    if not have:
        with transaction(db) as tx:
            for stmt in schema.split(";"):
                if stmt.strip():
                    tx.execute(stmt)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken up front (BEGIN IMMEDIATE), so two writers queue on the
    busy timeout instead of failing at commit; rolled back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")

"""Opening a store's database while another process holds it: the open waits, then
fails with one StorageError naming the file; a database already in WAL mode is not
switched again (the switch is what can fail without waiting)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portside import sqlitedb
from portside.errors import StorageError

HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
db.execute("INSERT INTO t VALUES (1)")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
db.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def _make(path: Path) -> None:
    db = sqlitedb.connect(path)
    db.execute("CREATE TABLE t(x)")
    db.close()


def test_connect_sets_wal_once_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _make(path)
    again = sqlitedb.connect(path)
    assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert again.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    again.close()


def test_connect_to_a_held_database_fails_with_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    _make(path)
    holder = _hold(path, 1.5)
    try:
        with pytest.raises(StorageError) as caught:
            db = sqlitedb.connect(path, timeout=0.3)
            db.execute("SELECT count(*) FROM t").fetchone()
            db.close()
            raise sqlite3.OperationalError("database is locked")  # read went through: wrong
    finally:
        holder.wait(timeout=10)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message


def test_connect_waits_for_a_holder_that_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "brief.db"
    _make(path)
    holder = _hold(path, 0.5)
    try:
        started = time.monotonic()
        db = sqlitedb.connect(path, timeout=20)
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1
        db.close()
        assert time.monotonic() - started >= 0.2  # it did wait for the holder
    finally:
        holder.wait(timeout=10)

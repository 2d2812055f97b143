"""Atomic small files and RFC 3339 timestamps, the monitor's record keeping."""

from __future__ import annotations

import os
import time

from portside.monitor import jsonlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def rfc3339nano(ns: int | None = None) -> str:
    """UTC with nanoseconds, as the CRI log format and docker's `time` field use."""
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Temp name in the same directory, fsync-free rename: readers see old or new, never half."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise


def write_json(path: str, doc: dict[str, Any]) -> None:
    write_atomic(path, (jsonlite.dumps(doc) + "\n").encode())


def read_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)

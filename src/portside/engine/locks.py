"""flock-based locks under the run root: one per container, so concurrent CLI
calls (start racing rm -f, 20 parallel runs) serialise per container only."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(directory: Path, name: str) -> Iterator[None]:
    """Hold an exclusive flock on DIRECTORY/NAME.lock; released when the process dies too."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def drop(directory: Path, name: str) -> None:
    """Remove a lock file once its container is gone (holders keep their open fd)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / f"{name}.lock")

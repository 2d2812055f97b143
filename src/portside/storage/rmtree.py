"""rm -rf that never follows a symlink, in a module of its own.

The layer store removes trees on every `rm` (snapshots, container dirs); keeping the
remover apart from apply.py (the tar machinery, ~10 ms to import) lets a CLI call
that never unpacks a layer skip loading it.
"""

from __future__ import annotations

import contextlib
import os
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def rmtree_at(pfd: int, name: str) -> None:
    """Remove a tree under a directory fd, never following a symlink."""
    fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
    try:
        if os.geteuid() != 0:
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o700)  # a read-only dir of the layer
        for child in os.listdir(fd):
            try:
                os.unlink(child, dir_fd=fd)
            except IsADirectoryError:
                rmtree_at(fd, child)
            except PermissionError:
                st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise
                rmtree_at(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=pfd)


def remove_at(pfd: int, name: str) -> None:
    """Remove whatever `name` is under a directory fd (a tree, a file, a link); gone is fine."""
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        rmtree_at(pfd, name)
    else:
        os.unlink(name, dir_fd=pfd)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """rm -rf that never follows symlinks and copes with read-only dirs."""
    p = os.fspath(path)
    parent, name = os.path.split(p.rstrip("/"))
    try:
        pfd = os.open(parent or ".", DIR_FLAGS)
    except FileNotFoundError:
        return
    try:
        remove_at(pfd, name)
    finally:
        os.close(pfd)

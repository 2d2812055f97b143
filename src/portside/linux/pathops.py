"""The path and environment helpers of `os` the runtime's start path needs, without `os`.

`portside-runtime` starts a fresh interpreter for every container, and in it (`python -IS`)
`import os` is the dearest single import on the way to the container: ~1.9 ms, mostly
`_collections_abc`, which `os` loads for its environ mapping; that is ~5% of a whole `run` of
/bin/true. The modules on that path call the system through `posix` (the C module `os`
re-exports) and use these helpers for what `os` adds on top. They follow `os.path` for
`str` paths on Linux; anything off the start path may keep using `os`.
"""

from __future__ import annotations

import posix
import sys
from _stat import S_ISDIR

_ENCODING = sys.getfilesystemencoding()
_ERRORS = sys.getfilesystemencodeerrors()


def fsencode(path: str | bytes) -> bytes:
    return path if isinstance(path, bytes) else path.encode(_ENCODING, _ERRORS)


def fsdecode(path: str | bytes) -> str:
    return path if isinstance(path, str) else path.decode(_ENCODING, _ERRORS)


def getenv(name: str, default: str | None = None) -> str | None:
    """os.environ.get: posix.environ is the process's environment as bytes."""
    value = posix.environ.get(fsencode(name))
    return default if value is None else fsdecode(value)


def join(first: str, *rest: str) -> str:
    """os.path.join: an absolute part starts the path anew."""
    path = first
    for part in rest:
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def dirname(path: str) -> str:
    head = path[: path.rfind("/") + 1]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head


def basename(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def isabs(path: str) -> bool:
    return path.startswith("/")


def normpath(path: str) -> str:
    """os.path.normpath: "." and ".." folded and repeated slashes merged, by the text alone."""
    if path.startswith("//") and not path.startswith("///"):
        lead = "//"  # POSIX lets exactly two leading slashes mean something else: kept, as os
    elif path.startswith("/"):
        lead = "/"
    else:
        lead = ""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        elif part != ".." or not lead:  # nothing is above the root
            parts.append(part)
    return lead + "/".join(parts) or "."


def abspath(path: str) -> str:
    return normpath(path if path.startswith("/") else join(posix.getcwd(), path))


def resolve_existing(path: str) -> str:
    """os.path.realpath of a path that exists, as the kernel resolves it. Any other (a
    dangling link included, which os.path.realpath would follow) is only made absolute."""
    try:
        fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
    except OSError:
        return abspath(path)
    try:
        return posix.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return abspath(path)
    finally:
        posix.close(fd)


def _mode(path: str, follow: bool = True) -> int:
    """The file's st_mode, or 0 when there is none to stat."""
    try:
        return posix.stat(path, follow_symlinks=follow).st_mode
    except (OSError, ValueError):
        return 0


def exists(path: str) -> bool:
    return _mode(path) != 0


def lexists(path: str) -> bool:
    return _mode(path, follow=False) != 0


def isdir(path: str) -> bool:
    return S_ISDIR(_mode(path))


def makedirs(path: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    """os.makedirs: the missing parents first (with the default mode, as os since 3.7)."""
    parent = dirname(path.rstrip("/") or "/")
    if parent and parent != path and not lexists(parent):
        makedirs(parent, exist_ok=True)
    try:
        posix.mkdir(path, mode)
    except OSError:
        if not exist_ok or not isdir(path):
            raise


def subdirs_bottom_up(directory: str) -> list[str]:
    """Every directory below `directory` (not itself), deepest first, symlinks not followed:
    the order in which a tree of cgroups can be removed."""
    out: list[str] = []
    try:
        with posix.scandir(directory) as entries:
            subdirs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return out
    for sub in subdirs:
        out.extend(subdirs_bottom_up(sub))
        out.append(sub)
    return out

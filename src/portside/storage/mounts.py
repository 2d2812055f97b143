"""Mount specs: what a driver hands out instead of mounting itself.

Drivers describe a root filesystem as a list of `Mount`s (as containerd's
snapshotters do) so the engine or the runtime mounts it where and when it
wants, e.g. inside a fresh mount namespace. `mount_all`/`unmount_all` are the
one place that turns specs into mount(2) calls.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from portside.errors import StorageError
from portside.linux import libc

__all__ = ["Mount", "is_mountpoint", "mount_all", "unmount_all"]

# mount(2) copies at most one page of option data; past it the kernel truncates.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_FLAGS: dict[str, tuple[int, bool]] = {
    "ro": (libc.MS_RDONLY, True),
    "rw": (libc.MS_RDONLY, False),
    "nosuid": (libc.MS_NOSUID, True),
    "suid": (libc.MS_NOSUID, False),
    "nodev": (libc.MS_NODEV, True),
    "dev": (libc.MS_NODEV, False),
    "noexec": (libc.MS_NOEXEC, True),
    "exec": (libc.MS_NOEXEC, False),
    "noatime": (libc.MS_NOATIME, True),
    "relatime": (libc.MS_RELATIME, True),
    "bind": (libc.MS_BIND, True),
    "rbind": (libc.MS_BIND | libc.MS_REC, True),
}


@dataclass(frozen=True)
class Mount:
    """One mount, in the runtime-spec's shape (type, source, options)."""

    type: str
    source: str
    target: str = ""  # relative to the target given to mount_all; "" is the target itself
    options: tuple[str, ...] = field(default_factory=tuple)

    def to_spec(self, destination: str) -> dict[str, object]:
        """The runtime-spec `mounts[]` / `root` form."""
        return {
            "destination": destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }

    def flags_and_data(self) -> tuple[int, str]:
        flags = 0
        data: list[str] = []
        for opt in self.options:
            known = _FLAGS.get(opt)
            if known is None:
                data.append(opt)
            elif known[1]:
                flags |= known[0]
            else:
                flags &= ~known[0]
        return flags, ",".join(data)


def _mount_one(m: Mount, where: str) -> None:
    flags, data = m.flags_and_data()
    if m.type == "overlay" and len(data) >= PAGE_SIZE - 1:
        _mount_overlay_relative(m, where, flags, data)
        return
    try:
        libc.mount(
            m.source,
            where,
            m.type,
            flags & ~libc.MS_RDONLY if _is_bind(flags) else flags,
            data or None,
        )
        if _is_bind(flags) and flags & libc.MS_RDONLY:
            # a bind mount ignores MS_RDONLY until it is remounted
            libc.mount(None, where, None, flags | libc.MS_REMOUNT, None)
    except OSError as e:
        raise StorageError(f"mount {m.type} {m.source} on {where}: {e.strerror}") from e


def _is_bind(flags: int) -> bool:
    return bool(flags & libc.MS_BIND)


def _mount_overlay_relative(m: Mount, where: str, flags: int, data: str) -> None:
    """Mount with lowerdir paths relative to their common directory.

    Absolute lower paths would overflow the page of mount data for deep images;
    relative ones need a chdir, which must not happen in this (maybe threaded)
    process, so a forked child does the chdir and the mount(2).
    """
    opts = data.split(",")
    lowers: list[str] = []
    for opt in opts:
        if opt.startswith("lowerdir="):
            lowers = opt[len("lowerdir=") :].split(":")
    if not lowers:
        raise StorageError(f"overlay mount on {where}: option data longer than a page")
    base = os.path.commonpath([os.path.dirname(p) for p in lowers])
    rel = [os.path.relpath(p, base) for p in lowers]
    new = ",".join("lowerdir=" + ":".join(rel) if o.startswith("lowerdir=") else o for o in opts)
    if len(new) >= PAGE_SIZE - 1:
        raise StorageError(
            f"overlay mount on {where}: {len(lowers)} lower layers do not fit in a page"
        )
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only async-signal-safe-ish work, then _exit
        try:
            os.close(r)
            os.chdir(base)
            libc.mount(m.source, where, m.type, flags, new)
            os._exit(0)
        except OSError as e:
            os.write(w, str(e.errno or 0).encode())
            os._exit(1)
        finally:
            os._exit(2)
    os.close(w)
    msg = os.read(r, 64)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        code = int(msg or b"0") or errno.EIO
        raise StorageError(f"mount overlay on {where}: {os.strerror(code)}")


def mount_all(mounts: Sequence[Mount], target: str | os.PathLike[str]) -> None:
    """Mount every spec under `target`, in order; on failure undo what was done."""
    base = os.fspath(target)
    done: list[str] = []
    try:
        for m in mounts:
            where = os.path.join(base, m.target.lstrip("/")) if m.target else base
            _mount_one(m, where)
            done.append(where)
    except BaseException:
        for where in reversed(done):
            _umount(where)
        raise


def _umount(where: str) -> None:
    try:
        libc.umount2(where, libc.UMOUNT_NOFOLLOW)
    except OSError as e:
        if e.errno == errno.EINVAL:  # not a mount point: already gone
            return
        if e.errno == errno.EBUSY:
            libc.umount2(where, libc.MNT_DETACH | libc.UMOUNT_NOFOLLOW)
            return
        raise StorageError(f"unmount {where}: {e.strerror}") from e


def unmount_all(target: str | os.PathLike[str], mounts: Sequence[Mount] = ()) -> None:
    """Unmount what `mount_all(mounts, target)` mounted; without specs, every
    mount stacked at or below `target` (what a crash may have left)."""
    base = os.path.realpath(os.fspath(target))
    points = [m for m in _mountinfo() if m == base or m.startswith(base + "/")]
    for where in sorted(points, key=len, reverse=True):
        _umount(where)


def is_mountpoint(path: str | os.PathLike[str]) -> bool:
    return os.path.realpath(os.fspath(path)) in set(_mountinfo())


def _mountinfo() -> list[str]:
    out: list[str] = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            point = line.split(b" ", 5)[4]
            out.append(_unescape(point.decode("utf-8", "surrogateescape")))
    return out


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    out = []
    i = 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)

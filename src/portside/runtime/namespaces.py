"""Entering namespaces: join by path, unshare new ones, write id maps from the parent.

The user namespace always comes first (joined or new), so every other
namespace made afterwards is owned by it; id maps are written by the parent,
which still holds the host privileges the kernel asks for.
"""

from __future__ import annotations

import posix

from portside.errors import RuntimeFailure
from portside.linux import libc, syscalls

PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}


def join(kind: str, path: str) -> None:
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"failed to open {path}: {(e.strerror or '').lower()}") from None
    try:
        syscalls.kernel.setns(fd, libc.NAMESPACE_FLAGS[kind])
    except OSError as e:
        raise RuntimeFailure(
            f"failed to join {kind} namespace {path}: {(e.strerror or '').lower()}"
        ) from None
    finally:
        posix.close(fd)


def unshare(kinds: list[str]) -> None:
    flags = 0
    for kind in kinds:
        flags |= libc.NAMESPACE_FLAGS[kind]
    if flags:
        try:
            syscalls.kernel.unshare(flags)
        except OSError as e:
            raise RuntimeFailure(
                f"unshare {','.join(kinds)}: {(e.strerror or '').lower()}"
            ) from None


def write_id_maps(
    pid: int, uids: list[tuple[int, int, int]], gids: list[tuple[int, int, int]]
) -> None:
    """Write /proc/PID/{uid,gid}_map (the parent's job: it is privileged on the host)."""
    for name, maps in (("uid_map", uids), ("gid_map", gids)):
        text = "".join(f"{c} {h} {n}\n" for c, h, n in maps)
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            raise RuntimeFailure(
                f"failed to write {name} {text.strip()!r}: {(e.strerror or '').lower()}"
            ) from None


def write_time_offsets(offsets: dict[str, dict[str, int]]) -> None:
    """Offsets of a new time namespace: allowed only before its first process exists."""
    lines = "".join(
        f"{clock} {v.get('secs', 0)} {v.get('nanosecs', 0)}\n" for clock, v in offsets.items()
    )
    with open("/proc/self/timens_offsets", "w") as f:
        f.write(lines)


def loopback_up() -> None:
    """A new network namespace has `lo` down; runc and crun bring it up."""
    import fcntl
    import sys

    fd = libc.socket(2, 2)  # AF_INET, SOCK_DGRAM: any socket takes the interface ioctls
    try:
        # struct ifreq: the name in 16 bytes, then the flags (a short) in a 24-byte union
        req = bytearray(b"lo".ljust(40, b"\0"))
        fcntl.ioctl(fd, 0x8913, req)  # SIOCGIFFLAGS
        flags = int.from_bytes(req[16:18], sys.byteorder) | 0x1  # IFF_UP
        req[16:18] = flags.to_bytes(2, sys.byteorder)
        fcntl.ioctl(fd, 0x8914, req)  # SIOCSIFFLAGS
    finally:
        posix.close(fd)

"""Persistent network namespaces, pinned by a bind mount under the run root.

A namespace lives as long as something holds it; the bind mount at
RUNROOT/netns/NAME is that something, so the runtime can join it by path and
the CNI plugins can configure it before any container process exists.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from portside.errors import InvalidArgument, NetworkError
from portside.linux import libc

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class NetnsError(NetworkError):
    """A network namespace could not be created, entered or removed."""


def netns_dir(runroot: str | os.PathLike[str]) -> Path:
    return Path(runroot) / "netns"


def _is_mountpoint(path: Path) -> bool:
    """True when `path` is the target of a mount (bind mounts of files included)."""
    target = os.fsencode(path.resolve())
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                mp = line.split(b" ", 5)[4]
                if mp.replace(b"\\040", b" ") == target:
                    return True
    except OSError:
        return False
    return False


def _share_dir(d: Path) -> None:
    """Make the netns dir a shared mount, so an unmount here also reaches copies of the
    pin that other mount namespaces (a container's, made later) took (podman's reason)."""
    d.mkdir(parents=True, exist_ok=True, mode=0o755)
    if not _is_mountpoint(d):
        libc.mount(str(d), str(d), None, libc.MS_BIND | libc.MS_REC)
    libc.mount("none", str(d), None, libc.MS_SHARED | libc.MS_REC)


def create(runroot: str | os.PathLike[str], name: str) -> Path:
    """A new, empty network namespace pinned at RUNROOT/netns/NAME; returns its path.

    The unshare happens in a thread of its own, which ends right after: the caller's
    threads never change namespace."""
    if not _NAME.match(name):
        raise InvalidArgument(f"invalid network namespace name {name!r}")
    d = netns_dir(runroot)
    _share_dir(d)
    path = d / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        raise NetnsError(f"network namespace {path} already exists") from None
    os.close(fd)
    err: list[int] = []
    # a thread of its own: a network namespace is per thread, so the unshare changes only
    # this short-lived thread (never the caller's), and it costs no fork of a large process
    worker = threading.Thread(target=_pin_new, args=(path, err), name="netns-create")
    worker.start()
    worker.join()
    if err:
        with contextlib.suppress(OSError):
            path.unlink()
        raise NetnsError(f"cannot create network namespace {path}: {os.strerror(err[0])}")
    return path


def _pin_new(path: Path, err: list[int]) -> None:
    """In a thread that ends right after: a new namespace, lo up, pinned at `path`."""
    try:
        libc.unshare(libc.CLONE_NEWNET)
        _loopback_up()
        libc.mount("/proc/thread-self/ns/net", str(path), None, libc.MS_BIND)
    except OSError as e:
        err.append(e.errno or errno.EIO)
    except BaseException:
        err.append(errno.EIO)


def _loopback_up() -> None:
    """Bring `lo` up with SIOCGIFFLAGS/SIOCSIFFLAGS: every namespace wants it, and an ioctl
    is far cheaper than exec'ing the CNI loopback plugin."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), 0x8913, req))[1]
        fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))


def remove(path: str | os.PathLike[str]) -> None:
    """Unpin and delete; missing is fine (removal must be idempotent, as CNI DEL)."""
    p = Path(path)
    try:
        libc.umount2(str(p), libc.MNT_DETACH)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOENT):
            raise NetnsError(f"cannot unmount network namespace {p}: {err.strerror}") from None
    with contextlib.suppress(FileNotFoundError):
        p.unlink()


def list_all(runroot: str | os.PathLike[str]) -> list[Path]:
    d = netns_dir(runroot)
    try:
        return sorted(p for p in d.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return []


def is_pinned(path: str | os.PathLike[str]) -> bool:
    """The file is a live namespace, not a plain file left by a crash before the mount:
    every nsfs file shares one device number, that of /proc/self/ns/net."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def release_dir(runroot: str | os.PathLike[str]) -> None:
    """Unmount the shared netns dir itself once it holds no namespaces (tests, prune)."""
    d = netns_dir(runroot)
    if d.is_dir() and not list_all(runroot):
        while _is_mountpoint(d):
            try:
                libc.umount2(str(d), libc.MNT_DETACH)
            except OSError:
                break


def setns_preexec(path: str | os.PathLike[str] | None) -> Callable[[], None] | None:
    """A subprocess preexec_fn that moves the child into the network namespace `path`
    (for running the CNI plugins, iptables, the DNS responder on a chosen host side)."""
    if path is None:
        return None
    target = os.fspath(path)

    def enter() -> None:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(fd, libc.CLONE_NEWNET)
        finally:
            os.close(fd)

    return enter


def run_in(
    path: str | os.PathLike[str] | None, argv: Sequence[str], **kwargs: Any
) -> subprocess.CompletedProcess[Any]:
    """subprocess.run of `argv` inside the network namespace `path` (None: ours)."""
    return subprocess.run(list(argv), preexec_fn=setns_preexec(path), **kwargs)

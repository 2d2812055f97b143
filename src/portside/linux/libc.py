"""Thin, C-faithful wrappers over the libc calls Python's os module lacks.

This is the only module that loads libc; everything above it calls these
functions, which raise OSError with the errno and the path, like os does.

It sits on `_ctypes`, the C half of ctypes, rather than on `ctypes`: the runtime
loads this module on every container start, and the `ctypes` package (its many
types, `struct`, `types`) costs more start-up time than the calls need. The
calls take bytes, None and ints, with the few unsigned longs wrapped; structures
are passed as packed bytes.
"""

from __future__ import annotations

import _ctypes
import posix
import sys

from portside.linux import pathops


class _CInt(_ctypes._SimpleCData):
    _type_ = "i"


class _CULong(_ctypes._SimpleCData):
    _type_ = "L"


class _Func(_ctypes.CFuncPtr):
    """A libc function: C calling convention, errno saved for get_errno, int result."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CInt


class _Library:
    """A dlopen handle whose attributes are its functions (what ctypes.CDLL does)."""

    def __init__(self, name: str) -> None:
        self._handle = _ctypes.dlopen(name, _ctypes.RTLD_LOCAL)

    def __getattr__(self, name: str) -> _Func:
        if name.startswith("__"):
            raise AttributeError(name)
        func = _Func((name, self))  # type: ignore[arg-type]  # reads only ._handle
        setattr(self, name, func)
        return func


def _load_libc() -> _Library:
    """glibc by its soname; ctypes.util.find_library would run ldconfig on every start."""
    try:
        return _Library("libc.so.6")
    except OSError:
        from ctypes.util import find_library

        return _Library(find_library("c") or "libc.so.6")


_libc = _load_libc()

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

# umount2(2) flags
MNT_FORCE = 0x1
MNT_DETACH = 0x2
MNT_EXPIRE = 0x4
UMOUNT_NOFOLLOW = 0x8

# clone(2) / unshare(2) / setns(2) namespace flags
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS: dict[str, int] = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}


def _check(result: int, *context: str) -> int:
    if result < 0:
        err = _ctypes.get_errno()
        raise OSError(err, posix.strerror(err), *context[:1])
    return result


def _b(path: str | bytes | None) -> bytes | None:
    if path is None or type(path) is bytes:
        return path
    return pathops.fsencode(path)


def mount(
    source: str | bytes | None,
    target: str | bytes,
    fstype: str | bytes | None,
    flags: int = 0,
    data: str | bytes | None = None,
) -> None:
    """mount(2); raises OSError naming the target."""
    if _libc.mount(_b(source), _b(target), _b(fstype), _CULong(flags), _b(data)) < 0:
        _check(-1, pathops.fsdecode(target))  # the name is made only for the error


def umount2(target: str | bytes, flags: int = 0) -> None:
    """umount2(2); raises OSError naming the target."""
    if _libc.umount2(_b(target), flags) < 0:
        _check(-1, pathops.fsdecode(target))


def pivot_root(new_root: str | bytes, put_old: str | bytes) -> None:
    """pivot_root(2), which has no glibc wrapper: called through syscall(2)."""
    _check(
        _libc.syscall(155 if _is_x86_64() else 41, _b(new_root), _b(put_old)),
        pathops.fsdecode(new_root),
    )


CLONE_INTO_CGROUP = 0x200000000
_SYS_CLONE3 = 435  # one number on every architecture (added after the tables were unified)
_SIGCHLD = 17


def fork_into_cgroup(cgroup_fd: int) -> int:
    """fork(2) whose child is born in the cgroup2 directory `cgroup_fd` (clone3 with
    CLONE_INTO_CGROUP): 0 in the child, its pid in the parent.

    Moving a process into a cgroup2 cgroup afterwards (cgroup.procs) takes the kernel's
    threadgroup lock, whose first taking waits an RCU grace period (7-25 ms here); being
    born there takes no such wait. Only for a single-threaded caller whose child goes on
    to exec: glibc's and Python's fork bookkeeping (at-fork handlers, malloc's locks, the
    thread's cached tid) is skipped, and the GIL is released during the call, so another
    thread could leave the child with a lock no thread of it will ever release.
    Raises OSError (ENOSYS before Linux 5.7, or a seccomp filter that refuses clone3):
    the caller then forks the usual way.
    """
    # struct clone_args (v2, 88 bytes): flags, pidfd, child_tid, parent_tid, exit_signal,
    # stack, stack_size, tls, set_tid, set_tid_size, cgroup
    fields = (CLONE_INTO_CGROUP, 0, 0, 0, _SIGCHLD, 0, 0, 0, 0, 0, cgroup_fd)
    args = b"".join(v.to_bytes(8, "little") for v in fields)
    return _check(_libc.syscall(_SYS_CLONE3, args, len(args)))


def unshare(flags: int) -> None:
    """unshare(2) (os.unshare arrives only in Python 3.12)."""
    _check(_libc.unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2) (os.setns arrives only in Python 3.12)."""
    _check(_libc.setns(fd, nstype))


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(
        _libc.prctl(
            option,
            _CULong(arg2),
            _CULong(arg3),
            _CULong(arg4),
            _CULong(arg5),
        )
    )


def _is_x86_64() -> bool:
    return posix.uname().machine == "x86_64"


def syscall(number: int, *args: int | bytes | None) -> int:
    """Raw syscall(2) for calls glibc does not wrap; returns the result or raises."""
    return _check(_libc.syscall(number, *args))


# prctl(2) options the runtime uses
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _u32s(*values: int) -> bytes:
    return b"".join((v & 0xFFFFFFFF).to_bytes(4, sys.byteorder) for v in values)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) with the 64-bit (v3) layout; each set is a bit mask of capability numbers.

    The header (version, pid) and the two data records (effective, permitted,
    inheritable; low words, then high) go in as packed bytes: with a valid version
    the kernel only reads them.
    """
    header = _u32s(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _u32s(effective, permitted, inheritable) + _u32s(
        effective >> 32, permitted >> 32, inheritable >> 32
    )
    _check(_libc.capset(header, data))


def personality(persona: int) -> int:
    """personality(2): returns the previous persona."""
    return _check(_libc.personality(_CULong(persona)))


def setgroups(groups: list[int]) -> None:
    """setgroups(2) directly (os.setgroups refuses an empty list on some builds)."""
    arr = _u32s(*groups) if groups else bytes(4)
    _check(_libc.setgroups(_CULong(len(groups)), arr))


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """prlimit(2) on this process (the `resource` module is one more library to load).

    Values at or above 2**63, and -1, mean RLIM_INFINITY."""
    mask = 0xFFFFFFFFFFFFFFFF
    limits = (soft & mask).to_bytes(8, sys.byteorder) + (hard & mask).to_bytes(8, sys.byteorder)
    _check(_libc.prlimit(0, resource, limits, None))


def socket(family: int, kind: int, proto: int = 0) -> int:
    """socket(2) as a bare fd, for an ioctl (the socket module is more than that needs)."""
    return _check(_libc.socket(family, kind, proto))

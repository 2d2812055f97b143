"""libseccomp through ctypes, and the seccomp(2) call that installs a filter.

libseccomp compiles rules to classic BPF (it knows every architecture's
syscall table); we export that program and install it ourselves with
seccomp(2), so every filter flag the kernel has (WAIT_KILLABLE_RECV included)
works whatever libseccomp version is installed. Only the development headers
are missing on a stock system, and ctypes does not need them.
"""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False  # typing is not imported on the container start path
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# Actions (linux/seccomp.h values; libseccomp uses the same numbers).
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_ERRNO_BASE = 0x00050000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_TRACE_BASE = 0x7FF00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000


def act_errno(errno: int) -> int:
    return SCMP_ACT_ERRNO_BASE | (errno & 0xFFFF)


def act_trace(msg: int) -> int:
    return SCMP_ACT_TRACE_BASE | (msg & 0xFFFF)


# enum scmp_compare
SCMP_CMP_NE = 1
SCMP_CMP_LT = 2
SCMP_CMP_LE = 3
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7

# enum scmp_filter_attr (stable numbering across 2.4 - 2.6)
SCMP_FLTATR_ACT_DEFAULT = 1
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_FLTATR_API_TSKIP = 5
SCMP_FLTATR_CTL_LOG = 6
SCMP_FLTATR_CTL_SSB = 7
SCMP_FLTATR_CTL_OPTIMIZE = 8
SCMP_FLTATR_API_SYSRAWRC = 9

# seccomp(2)
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5

FILTER_FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}

PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "i686": 354, "i386": 354, "s390x": 348}
_SYS_SECCOMP_DEFAULT = 317


class ScmpArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class _ScmpVersion(ctypes.Structure):
    _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class Condition:
    """One argument comparison: arg index, SCMP_CMP_* op, value and (for MASKED_EQ) value two."""

    __slots__ = ("index", "op", "value", "value_two")

    def __init__(self, index: int, op: int, value: int, value_two: int = 0) -> None:
        self.index = index
        self.op = op
        self.value = value
        self.value_two = value_two

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and (
            (self.index, self.op, self.value, self.value_two)
            == (other.index, other.op, other.value, other.value_two)
        )

    def __hash__(self) -> int:
        return hash((self.index, self.op, self.value, self.value_two))


_lib: ctypes.CDLL | None = None


def _load() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    # The soname first: find_library() runs ldconfig, which costs a process spawn.
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        from ctypes import util as ctypes_util

        name = ctypes_util.find_library("seccomp")
        if name is None:
            raise OSError("libseccomp is not installed (libseccomp.so.2 not found)") from None
        lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_release.restype = None
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_native.argtypes = ()
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(ScmpArgCmp),
    )
    lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    lib.seccomp_api_get.restype = ctypes.c_uint
    lib.seccomp_api_get.argtypes = ()
    lib.seccomp_version.restype = ctypes.POINTER(_ScmpVersion)
    lib.seccomp_version.argtypes = ()
    _lib = lib
    return lib


def available() -> bool:
    try:
        _load()
    except OSError:
        return False
    return True


def version() -> tuple[int, int, int]:
    v = _load().seccomp_version().contents
    return (int(v.major), int(v.minor), int(v.micro))


def api_level() -> int:
    return int(_load().seccomp_api_get())


def arch_native() -> int:
    return int(_load().seccomp_arch_native())


def resolve_arch(name: str) -> int | None:
    """libseccomp's token for an arch name such as "x86_64" or "x32"; None if unknown."""
    token = int(_load().seccomp_arch_resolve_name(name.encode()))
    return token or None


def resolve_syscall(name: str, arch: int | None = None) -> int | None:
    """The syscall number (negative for libseccomp pseudo-syscalls); None if unknown anywhere."""
    lib = _load()
    if arch is None:
        nr = int(lib.seccomp_syscall_resolve_name(name.encode()))
    else:
        nr = int(lib.seccomp_syscall_resolve_name_arch(arch, name.encode()))
    return None if nr == -1 else nr  # -1 is __NR_SCMP_ERROR


def _rc(rc: int, what: str) -> None:
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")


class Filter:
    """A libseccomp filter context; compile() returns the classic BPF program bytes."""

    def __init__(self, default_action: int) -> None:
        self._lib = _load()
        ctx = self._lib.seccomp_init(default_action)
        if not ctx:
            raise OSError(22, f"seccomp_init: invalid default action {default_action:#x}")
        self._ctx: int | None = ctx
        # The runtime sets no_new_privs itself when the spec asks: libseccomp must not.
        self.set_attr(SCMP_FLTATR_CTL_NNP, 0)

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._ctx is not None:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def _handle(self) -> int:
        if self._ctx is None:
            raise ValueError("seccomp filter already released")
        return self._ctx

    def set_attr(self, attr: int, value: int) -> None:
        _rc(self._lib.seccomp_attr_set(self._handle(), attr, value), f"seccomp_attr_set({attr})")

    def add_arch(self, token: int) -> None:
        rc = self._lib.seccomp_arch_add(self._handle(), token)
        if rc == -17:  # EEXIST: the native arch is always there
            return
        _rc(rc, f"seccomp_arch_add({token:#x})")

    def add_rule(self, action: int, syscall: int, conditions: Sequence[Condition] = ()) -> None:
        arr_type = ScmpArgCmp * max(len(conditions), 1)
        arr = arr_type(*(ScmpArgCmp(c.index, c.op, c.value, c.value_two) for c in conditions))
        rc = self._lib.seccomp_rule_add_array(self._handle(), action, syscall, len(conditions), arr)
        _rc(rc, f"seccomp_rule_add(syscall {syscall}, action {action:#x})")

    def compile(self) -> bytes:
        """The BPF program as struct sock_filter[] bytes (8 bytes an instruction)."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _rc(self._lib.seccomp_export_bpf(self._handle(), fd), "seccomp_export_bpf")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)


def _seccomp_syscall_nr() -> int:
    return _SYS_SECCOMP.get(os.uname().machine, _SYS_SECCOMP_DEFAULT)


def install_filter(program: bytes, flags: int = 0) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) in the calling thread.

    Returns the kernel's result: a listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0.
    Needs no_new_privs or CAP_SYS_ADMIN, as the kernel says.
    """
    if len(program) % 8 or not program:
        raise ValueError("a BPF program is a non-empty array of 8-byte instructions")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.syscall(
        ctypes.c_long(_seccomp_syscall_nr()),
        ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(flags),
        ctypes.byref(prog),
    )
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SET_MODE_FILTER, flags={flags:#x}): {os.strerror(err)}")
    return int(rc)


def action_available(action: int) -> bool:
    """SECCOMP_GET_ACTION_AVAIL: does the running kernel know this action?"""
    libc = ctypes.CDLL(None, use_errno=True)
    value = ctypes.c_uint32(action & 0xFFFF0000)
    rc = libc.syscall(
        ctypes.c_long(_seccomp_syscall_nr()),
        ctypes.c_uint(SECCOMP_GET_ACTION_AVAIL),
        ctypes.c_uint(0),
        ctypes.byref(value),
    )
    return bool(rc == 0)


def set_no_new_privs() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    zero = ctypes.c_ulong(0)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), zero, zero, zero) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")


def debug_info() -> dict[str, Any]:
    """For `features` and error messages: the library and API level in use."""
    return {"version": ".".join(map(str, version())), "api": api_level()}


# User notification (SCMP_ACT_NOTIFY) on the agent's side: linux/seccomp.h ioctls.
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif), 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp), 24 bytes
SECCOMP_IOCTL_NOTIF_ID_VALID = 0x40082102  # _IOW('!', 2, __u64)
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1


class Notification:
    """struct seccomp_notif: one trapped syscall waiting for the agent's answer."""

    __slots__ = ("arch", "args", "flags", "id", "instruction_pointer", "nr", "pid")

    def __init__(self, raw: bytes) -> None:
        import struct

        (self.id, self.pid, self.flags, self.nr, self.arch, self.instruction_pointer) = (
            struct.unpack_from("<QIIiIQ", raw, 0)
        )
        self.args = list(struct.unpack_from("<6Q", raw, 32))


def notif_recv(fd: int) -> Notification:
    """Block until a syscall is trapped (the kernel wants the buffer zeroed)."""
    import fcntl

    buf = bytearray(80)
    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
    return Notification(bytes(buf))


def notif_send(fd: int, notif_id: int, *, val: int = 0, error: int = 0, flags: int = 0) -> None:
    """Answer a notification: `error` is a negative errno (0 for success with `val`)."""
    import fcntl
    import struct

    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, struct.pack("<QqiI", notif_id, val, error, flags))


def flag_supported(flag: int) -> bool:
    """Probe the kernel: a known flag with a NULL program fails EFAULT, an unknown one EINVAL."""
    if flag & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV:
        flag |= SECCOMP_FILTER_FLAG_NEW_LISTENER  # only valid with a listener
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.syscall(
        ctypes.c_long(_seccomp_syscall_nr()),
        ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(flag),
        ctypes.c_void_p(None),
    )
    return rc < 0 and ctypes.get_errno() == 14  # EFAULT

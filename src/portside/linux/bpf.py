"""bpf(2) for cgroup device programs: load, attach, query, detach.

glibc has no bpf() wrapper; union bpf_attr is laid out by hand (only the
fields these commands read), zero-filled as the kernel requires.
"""

from __future__ import annotations

import ctypes
import os
import struct

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_OVERRIDE = 1
BPF_F_ALLOW_MULTI = 2

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "i686": 357, "i386": 357, "s390x": 351}
_ATTR_SIZE = 128

_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    nr = _SYS_BPF.get(os.uname().machine, 321)
    rc = _libc.syscall(
        ctypes.c_long(nr), ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(len(attr))
    )
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({what}): {os.strerror(err)}")
    return int(rc)


def prog_load(
    prog_type: int,
    insns: bytes,
    *,
    license: str = "Apache-2.0",
    expected_attach_type: int = 0,
    name: str = "",
    log_size: int = 1 << 16,
) -> int:
    """Load a program and return its fd; on a verifier refusal the log is in the error."""
    insn_buf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(log_size)
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(
        "<IIQQIIQII",
        attr,
        0,
        prog_type,
        len(insns) // 8,
        ctypes.addressof(insn_buf),
        ctypes.addressof(lic),
        1,  # log_level: fill the log only on failure would be 0; 1 gives the verifier's reason
        log_size,
        ctypes.addressof(log),
        0,
        0,
    )
    struct.pack_into("<16s", attr, 48, name.encode()[:15])
    struct.pack_into("<I", attr, 68, expected_attach_type)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "PROG_LOAD")
    except OSError as exc:
        text = log.value.decode(errors="replace").strip()
        if text:
            raise OSError(exc.errno, f"{exc.strerror}; verifier: {text.splitlines()[-1]}") from exc
        raise


def prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIII", attr, 0, target_fd, prog_fd, attach_type, flags)
    _bpf(BPF_PROG_ATTACH, attr, "PROG_ATTACH")


def prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<III", attr, 0, target_fd, prog_fd, attach_type)
    _bpf(BPF_PROG_DETACH, attr, "PROG_DETACH")


def prog_query(target_fd: int, attach_type: int, max_progs: int = 64) -> list[int]:
    """The ids of the programs attached to a cgroup for one attach type."""
    ids = (ctypes.c_uint32 * max_progs)()
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(
        "<IIIIQI", attr, 0, target_fd, attach_type, 0, 0, ctypes.addressof(ids), max_progs
    )
    _bpf(BPF_PROG_QUERY, attr, "PROG_QUERY")
    (count,) = struct.unpack_from("<I", attr, 24)
    return [int(ids[i]) for i in range(min(count, max_progs))]


def prog_get_fd_by_id(prog_id: int) -> int:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<I", attr, 0, prog_id)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr, "PROG_GET_FD_BY_ID")

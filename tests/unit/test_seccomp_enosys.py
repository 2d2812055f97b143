"""The -ENOSYS prologue, run through a small classic-BPF interpreter for every arch path."""

from __future__ import annotations

import errno
import struct

import pytest

from portside.linux import seccomp as lib
from portside.runtime import seccomp as sc

pytestmark = pytest.mark.skipif(not lib.available(), reason="libseccomp.so.2 is not installed")

X86_64, X86, X32_TOKEN = 0xC000003E, 0x40000003, 0x4000003E
AARCH64 = 0xC00000B7
FILTER = "filter"  # fell through into libseccomp's program


def run(stub: bytes, arch: int, nr: int) -> int | str:
    insns = [struct.unpack_from("<HBBI", stub, i) for i in range(0, len(stub), 8)]
    data = {0: nr & 0xFFFFFFFF, 4: arch}
    acc, pc = 0, 0
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            acc = data[k]
        elif code == 0x06:
            return k
        elif code == 0x05:
            pc += k
        else:
            cond = {0x15: acc == k, 0x25: acc > k, 0x45: bool(acc & k)}[code]
            pc += jt if cond else jf
    return FILTER


def tokens(*names: str) -> list[int]:
    out = []
    for n in names:
        t = lib.resolve_arch(n)
        assert t is not None
        out.append(t)
    return out


ENOSYS = lib.act_errno(errno.ENOSYS)
NAMES = ["read", "write", "futex", "exit_group"]  # largest on x86_64: exit_group (231)


def test_x86_64_with_x32_and_x86() -> None:
    stub = sc.enosys_stub(tokens("x86_64", "x86", "x32"), NAMES)
    assert run(stub, X86_64, 231) == FILTER
    assert run(stub, X86_64, 232) == ENOSYS
    assert run(stub, X86_64, 436) == ENOSYS
    assert run(stub, X86_64, 100) == FILTER  # below the max: the profile decides
    x32_max = lib.resolve_syscall("exit_group", X32_TOKEN)
    assert x32_max is not None and x32_max & 0x40000000
    assert run(stub, X86_64, x32_max) == FILTER
    assert run(stub, X86_64, x32_max + 1) == ENOSYS
    assert run(stub, X86, 252) == FILTER  # exit_group on i386
    assert run(stub, X86, 253) == ENOSYS
    assert run(stub, AARCH64, 5000) == FILTER  # not listed: libseccomp's bad-arch action


def test_x86_64_without_x32_leaves_x32_calls_to_the_filter() -> None:
    stub = sc.enosys_stub(tokens("x86_64"), NAMES)
    assert run(stub, X86_64, 232) == ENOSYS
    assert run(stub, X86_64, 0x40000000 | 5000) == FILTER


def test_x32_only() -> None:
    stub = sc.enosys_stub(tokens("x32"), NAMES)
    assert run(stub, X86_64, 5000) == FILTER  # a native x86_64 call
    assert run(stub, X86_64, 0x40000000 | 5000) == ENOSYS


def test_stub_only_for_restrictive_defaults() -> None:
    base = {"architectures": ["SCMP_ARCH_X86_64"], "syscalls": [{"names": NAMES}]}

    def size(default: str, errno_ret: int | None = None) -> int:
        cfg = dict(base, defaultAction=default)
        cfg["syscalls"] = [{"names": NAMES, "action": "SCMP_ACT_ALLOW"}]
        if errno_ret is not None:
            cfg["defaultErrnoRet"] = errno_ret
        return len(sc.compile_seccomp(cfg).program)

    plain = size("SCMP_ACT_KILL") - len(sc.enosys_stub(tokens("x86_64"), NAMES))
    assert plain > 0
    assert size("SCMP_ACT_ERRNO") > size("SCMP_ACT_ERRNO", errno.ENOSYS)
    assert size("SCMP_ACT_LOG") < size("SCMP_ACT_KILL")

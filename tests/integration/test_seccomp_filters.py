"""Seccomp filters installed for real in forked children, checked by what the kernel does."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside.errors import SeccompError
from portside.linux import seccomp as lib
from portside.runtime import seccomp as sc
from tests.conftest import SPECS

pytestmark = pytest.mark.skipif(not lib.available(), reason="libseccomp.so.2 is not installed")

_libc = ctypes.CDLL(None, use_errno=True)
SYS_close = 3
SYS_getpriority = 140
SYS_getppid = 110
SYS_personality = 135

DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
]


def raw(nr: int, *args: int) -> int:
    """syscall(2) returning -errno on failure, so a child can report the exact result."""
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    return -ctypes.get_errno() if rc == -1 else int(rc)


def in_child(
    config: dict[str, Any], body: Callable[[], Any], *, nnp: bool = True
) -> tuple[int, Any]:
    """Fork; the child installs `config`, runs body and writes its JSON result to a pipe.

    Returns (wait status, result or None when the child died before reporting).
    """
    compiled = sc.compile_seccomp(config)  # libseccomp work stays in the parent
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            if nnp:
                lib.set_no_new_privs()
            sc.install(compiled)
            result = body()
            os.write(w, json.dumps(result).encode())
            os._exit(0)
        except BaseException as exc:
            os.write(w, json.dumps({"error": repr(exc)}).encode())
            os._exit(99)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, json.loads(data) if data else None


def allow_all(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **extra}


def test_errno_action_returns_the_errno() -> None:
    cfg = allow_all({"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42})
    status, result = in_child(cfg, lambda: raw(SYS_getpriority, 0, 0))
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == -42


def test_errno_without_errnoret_is_eperm() -> None:
    cfg = allow_all({"names": ["getpriority"], "action": "SCMP_ACT_ERRNO"})
    _, result = in_child(cfg, lambda: raw(SYS_getpriority, 0, 0))
    assert result == -errno.EPERM


def test_allowed_syscalls_still_work() -> None:
    cfg = allow_all({"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42})
    _, result = in_child(cfg, lambda: raw(SYS_getppid))
    assert result == os.getpid()


@pytest.mark.parametrize(
    "action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD"]
)
def test_kill_actions_kill_with_sigsys(action: str) -> None:
    cfg = allow_all({"names": ["getpriority"], "action": action})
    status, result = in_child(cfg, lambda: raw(SYS_getpriority, 0, 0))
    assert result is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_trap_delivers_sigsys_to_the_process() -> None:
    def body() -> Any:
        hits: list[int] = []
        signal.signal(signal.SIGSYS, lambda *_: hits.append(1))
        raw(SYS_getpriority, 0, 0)
        return len(hits)

    _, result = in_child(allow_all({"names": ["getpriority"], "action": "SCMP_ACT_TRAP"}), body)
    assert result == 1


def test_log_action_allows_the_call() -> None:
    cfg = allow_all({"names": ["getppid"], "action": "SCMP_ACT_LOG"})
    _, result = in_child(cfg, lambda: raw(SYS_getppid))
    assert result == os.getpid()


def test_trace_without_tracer_fails_with_enosys() -> None:
    # With no ptrace tracer attached the kernel answers -ENOSYS for SECCOMP_RET_TRACE.
    cfg = allow_all({"names": ["getpriority"], "action": "SCMP_ACT_TRACE", "errnoRet": 7})
    _, result = in_child(cfg, lambda: raw(SYS_getpriority, 0, 0))
    assert result == -errno.ENOSYS


def test_default_errno_ret_applies_to_unlisted_syscalls() -> None:
    cfg = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [
            {
                "names": [
                    "write",
                    "exit_group",
                    "exit",
                    "rt_sigreturn",
                    "rt_sigprocmask",
                    "rt_sigaction",
                    "munmap",
                    "mmap",
                    "brk",
                    "madvise",
                    "getppid",
                    "futex",
                ],
                "action": "SCMP_ACT_ALLOW",
            }
        ],
    }
    status, result = in_child(cfg, lambda: [raw(SYS_getppid), raw(SYS_getpriority, 0, 0)])
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == [os.getpid(), -38]


def test_argument_comparisons_match_only_the_right_values() -> None:
    rules = [
        {
            "names": ["getpriority"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 11,
            "args": [{"index": 1, "value": 4242, "op": "SCMP_CMP_EQ"}],
        },
        {
            "names": ["close"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 12,
            "args": [{"index": 0, "value": 5000, "op": "SCMP_CMP_GE"}],
        },
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 13,
            # masked: (arg0 & 0xff00) == 0x4200
            "args": [{"index": 0, "value": 0xFF00, "valueTwo": 0x4200, "op": "SCMP_CMP_MASKED_EQ"}],
        },
    ]

    def body() -> Any:
        return {
            "prio_hit": raw(SYS_getpriority, 0, 4242),
            "prio_miss": raw(SYS_getpriority, 0, 0),
            "close_hit": raw(SYS_close, 6000),
            "close_miss": raw(SYS_close, 4999),
            "pers_hit": raw(SYS_personality, 0x42FF),
            "pers_miss": raw(SYS_personality, 0xFFFFFFFF),
        }

    _, result = in_child(allow_all(*rules), body)
    assert result["prio_hit"] == -11
    assert result["prio_miss"] >= 0
    assert result["close_hit"] == -12
    assert result["close_miss"] == -errno.EBADF
    assert result["pers_hit"] == -13
    assert result["pers_miss"] >= 0  # 0xffffffff queries the persona


def test_conditions_on_different_args_are_anded() -> None:
    rule = {
        "names": ["getpriority"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": 21,
        "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 777, "op": "SCMP_CMP_EQ"},
        ],
    }
    _, result = in_child(
        allow_all(rule), lambda: [raw(SYS_getpriority, 0, 777), raw(SYS_getpriority, 1, 777)]
    )
    assert result[0] == -21
    assert result[1] != -21  # arg0 differs: the AND fails


def test_conditions_on_the_same_arg_are_ored_as_runc_does() -> None:
    rule = {
        "names": ["close"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": 22,
        "args": [
            {"index": 0, "value": 7001, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 7002, "op": "SCMP_CMP_EQ"},
        ],
    }
    _, result = in_child(allow_all(rule), lambda: [raw(SYS_close, n) for n in (7001, 7002, 7003)])
    assert result == [-22, -22, -errno.EBADF]


def test_unknown_syscall_names_are_ignored() -> None:
    cfg = allow_all(
        {"names": ["no_such_syscall_xyz", "getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9}
    )
    assert sc.compile_seccomp(cfg).skipped == ["no_such_syscall_xyz"]
    _, result = in_child(cfg, lambda: raw(SYS_getpriority, 0, 0))
    assert result == -9


def test_extra_architectures_and_flags_load() -> None:
    cfg = allow_all(
        {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        flags=[
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        ],
    )
    status, result = in_child(cfg, lambda: raw(SYS_getpriority, 0, 0))
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == -5


def test_without_nnp_root_can_still_install_with_cap_sys_admin() -> None:
    cfg = allow_all({"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6})

    def body() -> Any:
        status = Path("/proc/self/status").read_text()
        nnp = next(ln for ln in status.splitlines() if ln.startswith("NoNewPrivs:"))
        return [raw(SYS_getpriority, 0, 0), nnp.split()[1]]

    if os.geteuid() != 0:
        pytest.skip("needs CAP_SYS_ADMIN (root) to install a filter without no_new_privs")
    _, result = in_child(cfg, body, nnp=False)
    assert result == [-6, "0"]  # the filter does not set no_new_privs on its own


def _default_profile() -> dict[str, Any]:
    profile = json.loads((SPECS / "seccomp" / "default.json").read_text())
    return sc.profile_to_oci(profile, DEFAULT_CAPS)


def test_default_profile_loads_and_busybox_runs_under_it() -> None:
    cfg = _default_profile()
    compiled = sc.compile_seccomp(cfg)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.dup2(w, 1)
            lib.set_no_new_privs()
            sc.install(compiled)
            os.execv(
                "/bin/busybox",
                ["busybox", "sh", "-c", "grep '^Seccomp:' /proc/self/status && /bin/busybox true"],
            )
        finally:
            os._exit(127)
    os.close(w)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.split() == [b"Seccomp:", b"2"]


def test_default_profile_blocks_what_it_should() -> None:
    cfg = _default_profile()
    SYS_sysfs, SYS_kcmp = 139, 312
    me = os.getpid()

    def body() -> Any:
        child = os.getpid()
        return [raw(SYS_sysfs, 3), raw(SYS_kcmp, child, child, 0, 0, 0), raw(SYS_getppid)]

    # Outside the filter both calls work, so an EPERM below is the profile's doing.
    assert raw(SYS_sysfs, 3) > 0
    assert raw(SYS_kcmp, me, me, 0, 0, 0) == 0
    _, result = in_child(cfg, body)
    assert result == [-errno.EPERM, -errno.EPERM, me]


def test_vendored_default_profile_matches_the_spec_copy() -> None:
    vendored = Path(sc.__file__).parents[1] / "data" / "seccomp" / "default.json"
    assert vendored.read_bytes() == (SPECS / "seccomp" / "default.json").read_bytes()
    assert sc.default_profile() == json.loads(vendored.read_text())


@pytest.mark.timeout(30)
def test_notify_hands_a_listener_fd_to_the_agent(tmp_path: Path) -> None:
    listener = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(listener))
    server.listen(1)
    cfg = allow_all(
        {"names": ["getpriority"], "action": "SCMP_ACT_NOTIFY"},
        listenerPath=str(listener),
        listenerMetadata="hello",
    )
    compiled = sc.compile_seccomp(cfg)
    assert compiled.notify
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            lib.set_no_new_privs()
            fd = sc.install(compiled)
            assert fd is not None
            state = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": os.getpid()}
            sc.send_listener_fd(str(listener), fd, state, metadata="hello")
            os.close(fd)
            os._exit(0)
        finally:
            os._exit(1)
    try:
        conn, _ = server.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        conn.close()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        payload = json.loads(msg)
        assert payload["fds"] == ["seccompFd"]
        assert payload["metadata"] == "hello"
        assert payload["pid"] == pid
        assert payload["state"]["id"] == "c1"
        assert len(fds) == 1
        # A seccomp notify fd: /proc shows it as anon_inode:seccomp notify.
        assert "seccomp" in os.readlink(f"/proc/self/fd/{fds[0]}")
        os.close(fds[0])
    finally:
        server.close()


def test_send_listener_fd_names_the_path_it_cannot_reach(tmp_path: Path) -> None:
    with pytest.raises(SeccompError, match=r"agent\.sock"):
        sc.send_listener_fd(str(tmp_path / "agent.sock"), 0, {"pid": 1})


@pytest.mark.timeout(30)
def test_notify_agent_answers_the_trapped_syscall(tmp_path: Path) -> None:
    """A full SCMP_ACT_NOTIFY round trip: the child's getpriority waits for our answer."""
    listener = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(listener))
    server.listen(1)
    cfg = allow_all(
        {
            "names": ["getpriority"],
            "action": "SCMP_ACT_NOTIFY",
            "args": [{"index": 1, "value": 4321, "op": "SCMP_CMP_EQ"}],
        },
        listenerPath=str(listener),
        flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
    )
    compiled = sc.compile_seccomp(cfg)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            lib.set_no_new_privs()
            fd = sc.install(compiled)
            assert fd is not None
            sc.send_listener_fd(str(listener), fd, {"pid": os.getpid(), "id": "n"})
            os.close(fd)
            results = [raw(SYS_getpriority, 0, 4321), raw(SYS_getpriority, 0, 4321)]
            results.append(raw(SYS_getpriority, 0, 0))  # not trapped: other arg
            os.write(w, json.dumps(results).encode())
            os._exit(0)
        finally:
            os._exit(1)
    os.close(w)
    try:
        conn, _ = server.accept()
        _, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        conn.close()
        agent = fds[0]
        first = lib.notif_recv(agent)
        assert first.nr == SYS_getpriority and first.pid == pid and first.args[1] == 4321
        lib.notif_send(agent, first.id, error=-errno.EDOM)
        second = lib.notif_recv(agent)
        lib.notif_send(agent, second.id, val=7)
        data = os.read(r, 4096)
        _, status = os.waitpid(pid, 0)
        os.close(agent)
    finally:
        server.close()
        os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0
    results = json.loads(data)
    assert results[0] == -errno.EDOM
    assert results[1] == 7
    assert results[2] != -errno.EDOM


PYTHON_NEEDS = [
    "write",
    "exit_group",
    "exit",
    "rt_sigreturn",
    "rt_sigprocmask",
    "rt_sigaction",
    "munmap",
    "mmap",
    "brk",
    "madvise",
    "getppid",
    "futex",
]


def test_syscalls_newer_than_the_profile_get_enosys_not_the_default() -> None:
    """runc's -ENOSYS stub: libc falls back from clone3/close_range only on ENOSYS."""
    SYS_close_range = 436
    cfg = {
        "defaultAction": "SCMP_ACT_ERRNO",  # EPERM
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": PYTHON_NEEDS, "action": "SCMP_ACT_ALLOW"}],
    }
    status, result = in_child(
        cfg,
        lambda: [raw(SYS_close_range, 1000, 1001, 0), raw(SYS_getpriority, 0, 0), raw(SYS_getppid)],
    )
    assert os.waitstatus_to_exitcode(status) == 0
    # close_range (436) is above futex (202), the largest listed: ENOSYS;
    # getpriority (140) is below it and unlisted: the default EPERM.
    assert result == [-errno.ENOSYS, -errno.EPERM, os.getpid()]


def test_no_enosys_stub_without_architectures() -> None:
    cfg = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": PYTHON_NEEDS, "action": "SCMP_ACT_ALLOW"}],
    }
    _, result = in_child(cfg, lambda: raw(436, 1000, 1001, 0))
    assert result == -errno.EPERM


_OPS = {
    "SCMP_CMP_NE": lambda a, v, v2: a != v,
    "SCMP_CMP_LT": lambda a, v, v2: a < v,
    "SCMP_CMP_LE": lambda a, v, v2: a <= v,
    "SCMP_CMP_EQ": lambda a, v, v2: a == v,
    "SCMP_CMP_GE": lambda a, v, v2: a >= v,
    "SCMP_CMP_GT": lambda a, v, v2: a > v,
    # libseccomp masks the datum too (as runc sees it): (arg & mask) == (datum & mask)
    "SCMP_CMP_MASKED_EQ": lambda a, v, v2: (a & v) == (v2 & v),
}
_VALUES = [0, 1, 2, 7, 8, 255, 256, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, (1 << 64) - 1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    op=st.sampled_from(sorted(_OPS)),
    value=st.sampled_from(_VALUES),
    value_two=st.sampled_from(_VALUES),
)
def test_every_operator_matches_unsigned_64_bit_semantics(
    op: str, value: int, value_two: int
) -> None:
    """The kernel's verdicts for one rule over many argument values, against plain Python."""
    rule = {
        "names": ["getpriority"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": 77,
        "args": [{"index": 1, "value": value, "valueTwo": value_two, "op": op}],
    }

    def body() -> Any:
        return [raw(SYS_getpriority, 0, a - (1 << 64) if a >= 1 << 63 else a) for a in _VALUES]

    _, result = in_child(allow_all(rule), body)
    got = [r == -77 for r in result]
    want = [_OPS[op](a, value, value_two) for a in _VALUES]
    assert got == want


def _int80_getpid() -> int:
    """getpid through the i386 entry (int 0x80): the kernel reports AUDIT_ARCH_I386."""
    import mmap

    code = bytes([0xB8, 0x14, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax,20; int 0x80; ret
    buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    return int(ctypes.CFUNCTYPE(ctypes.c_int)(addr)())


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the i386 entry exists on x86_64 only")
def test_architectures_decide_whether_i386_calls_are_filtered_or_killed() -> None:
    rule = {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 55}
    # Only the native arch: an i386 call is a foreign arch, which libseccomp kills.
    status, result = in_child(allow_all(rule, architectures=["SCMP_ARCH_X86_64"]), _int80_getpid)
    assert result is None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
    # With SCMP_ARCH_X86 the rule applies by name through the i386 syscall table.
    both = allow_all(rule, architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
    status, result = in_child(both, _int80_getpid)
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == -55

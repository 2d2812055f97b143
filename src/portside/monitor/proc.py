"""Process plumbing for the monitor: spawning the runtime, the subreaper bit, fd passing.

Everything here avoids `subprocess`, `signal` and `socket` (each pulls in
enum, selectors or threading): the monitor is resident once per container.
"""

# ruff: noqa: SIM105  (contextlib would load functools and collections into every monitor)
from __future__ import annotations

import _signal
import _socket
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Dispositions Python changes at start-up that a container must not inherit.
_RESET_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGCHLD, _signal.SIGHUP)
PR_SET_CHILD_SUBREAPER = 36


def spawn(
    argv: list[str],
    stdin: int,
    stdout: int,
    stderr: int,
    env: dict[str, str] | None = None,
    setsid: bool = False,
) -> int:
    """posix_spawn argv[0] with the given fds as 0, 1, 2 (each must be >= 3)."""
    actions = [
        (os.POSIX_SPAWN_DUP2, stdin, 0),
        (os.POSIX_SPAWN_DUP2, stdout, 1),
        (os.POSIX_SPAWN_DUP2, stderr, 2),
    ]
    return os.posix_spawn(
        argv[0],
        argv,
        os.environ if env is None else env,
        file_actions=actions,
        setsigdef=_RESET_SIGNALS,
        setsigmask=(),
        setsid=setsid,
    )


def exit_code(status: int) -> tuple[int, int]:
    """(code, signal) from a wait status; a signal death is 128+N as shells and docker say."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return 128 - code, -code
    return code, 0


def read_nonblocking(fd: int) -> tuple[bytes, bool]:
    """What is available now, and whether the other end is closed (EOF, or EIO on a pty)."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return b"".join(chunks), False
        except OSError:  # EIO: the pty's slave side is closed
            return b"".join(chunks), True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


_prctl: Any = None


def preload_prctl() -> None:
    """Resolve prctl once (the zygote does, so its forks share it)."""
    global _prctl
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl


def trim_malloc() -> None:
    """malloc_trim(0) before the freeze: free heap memory merged and given back.

    In a zygote that loaded portside-runtime's modules, what that load freed
    is then no longer mapped, and the large blocks a monitor allocates come
    from merged chunks rather than from holes over many shared pages.
    """
    import ctypes

    ctypes.CDLL(None).malloc_trim(0)


_mallinfo2: Any = None


def malloc_holes() -> int:
    """Bytes free in malloc's heap below its top chunk (glibc's mallinfo2), or -1.

    The first call sets up the ctypes call; later ones allocate nothing on
    malloc's heap, so that a caller can watch what its own allocations take.
    """
    global _mallinfo2
    if _mallinfo2 is None:
        import ctypes

        class MallInfo2(ctypes.Structure):
            _fields_ = [(f"f{i}", ctypes.c_size_t) for i in range(10)]  # fordblks, keepcost last

        try:
            _mallinfo2 = ctypes.CDLL(None).mallinfo2
        except AttributeError:  # not glibc 2.33+
            return -1
        _mallinfo2.restype = MallInfo2
    info = _mallinfo2()
    return int(info.f8 - info.f9)


def set_subreaper(on: int = 1) -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphans of the container's runtime come to us.

    portside.linux.libc would load ctypes.util (and with it subprocess and
    shutil) into every monitor; dlopen(NULL) with bare ctypes is enough here.
    A monitor started on its own drops the module again: nothing else needs it.
    `on=0` clears the bit (the zygote's warm-up calls: a no-op there).
    """
    global _prctl
    preloaded = _prctl is not None
    if not preloaded:
        preload_prctl()
    if _prctl(PR_SET_CHILD_SUBREAPER, on, 0, 0, 0) != 0:
        import ctypes  # only here: an import statement touches the module's spec and dict

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), "prctl(PR_SET_CHILD_SUBREAPER)")
    if not preloaded:
        _prctl = None
        for name in [m for m in sys.modules if m == "ctypes" or m.startswith("ctypes.")]:
            del sys.modules[name]


def unix_listener(path: str, kind: int) -> _socket.socket:
    """A non-blocking listening unix socket at path (a stale one is replaced)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = _socket.socket(_socket.AF_UNIX, kind | _socket.SOCK_CLOEXEC)
    sock.bind(path)
    sock.listen(16)
    sock.setblocking(False)
    return sock


def accept(listener: _socket.socket, kind: int) -> _socket.socket | None:
    try:
        fd, _ = listener._accept()  # type: ignore[attr-defined]
    except BlockingIOError:
        return None
    sock = _socket.socket(_socket.AF_UNIX, kind, 0, fd)
    sock.setblocking(False)
    return sock


def recv_fd(sock: _socket.socket) -> int | None:
    """The first fd sent with SCM_RIGHTS (the runtime's pty master); others are closed."""
    _, ancdata, _, _ = sock.recvmsg(4096, _socket.CMSG_LEN(4 * 8))
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(int.from_bytes(data[i : i + 4], sys.byteorder) for i in range(0, usable, 4))
    for extra in fds[1:]:
        os.close(extra)
    return fds[0] if fds else None

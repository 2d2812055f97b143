"""The warm CLI: a pre-imported copy of `portside` that serves calls by forking.

A `portside` call is a fresh Python process that spends ~100 ms importing click, the
engine, the stores and the monitor client before it does ~20 ms of work. The warm CLI
is a cache, as the monitor zygote is: a process that has imported all of that once and
forks a worker per call. The caller (this module's `forward`, which imports nothing but
builtins) hands the worker its stdin, stdout, stderr and working directory (SCM_RIGHTS),
its argv, environment, umask and sys.path; the worker runs exactly the code the CLI
runs (click parses every flag) and reports the exit status, which the caller exits with.
The caller forwards the signals a user sends it (INT, TERM, HUP, QUIT, USR1, USR2,
WINCH) to the worker, and if the caller dies the worker dies too (SIGIO on a lifeline
socket whose only event is the caller's end closing).

It is not a daemon: a worker lives as long as its call; the monitors and containers a
worker starts are never the warm CLI's children (monitors come from their zygote or
double-fork); killing it touches nothing; it exits after WARM_IDLE seconds without a
call; and whenever it is absent, stale or unable to stand in for the caller, the caller
runs the CLI itself exactly as before. It stands in only for the same user in the same
namespaces, root directory, credentials and capability set, with the same interpreter
settings (sys.path, flags, locale and PYTHON* variables), and only while every source
file is as it was when it loaded them (the caller sends both tags; a server whose code
tag differs is stale and exits, one whose settings differ leaves the call). Verbs that
hand the terminal to another process (`exec`, `attach`) or talk to registries (`pull`,
`login`: progress bars and password prompts) are not forwarded.

    PORTSIDE_WARM=0        never use it (the CLI runs in its own process, as before)
    PORTSIDE_WARM_DIR=DIR  its socket, lock and PID file (default /run/portside-warm/KEY
                           for root, $XDG_RUNTIME_DIR/portside-warm/KEY otherwise; KEY
                           names the installation)
    PORTSIDE_WARM_IDLE=S   seconds without a call before it exits (default WARM_IDLE)
"""

from __future__ import annotations

import _signal
import _socket
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterable

WARM_IDLE = 300.0  # seconds without a call before the warm CLI exits
# the verbs served warm; everything else (and any global option but these) runs here
WARM_VERBS = frozenset(
    {
        "container",
        "create",
        "images",
        "inspect",
        "kill",
        "logs",
        "pause",
        "port",
        "ps",
        "rename",
        "restart",
        "rm",
        "run",
        "start",
        "stats",
        "stop",
        "top",
        "unpause",
        "version",
        "volume",
        "wait",
    }
)
_GLOBAL_WITH_VALUE = ("--root", "--runroot", "--config", "--storage-driver")
_FORWARDED = (
    _signal.SIGINT,
    _signal.SIGTERM,
    _signal.SIGHUP,
    _signal.SIGQUIT,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
    _signal.SIGWINCH,
)
_NAMESPACES = ("mnt", "net", "pid", "ipc", "uts", "user", "cgroup")
_STATUS_KEYS = (b"Uid:", b"Gid:", b"Groups:", b"NoNewPrivs:", b"Seccomp:", b"Cap")
_SOCKET = "cli.sock"
_LOCK = "cli.lock"
_PID = "cli.pid"
_MAX_REQUEST = 1 << 20
_BOOT = (
    "import sys; sys.path[:] = sys.argv[3:]; from portside.cli.warm import serve; "
    "serve(sys.argv[1], int(sys.argv[2]))"
)


def warm_dir() -> str | None:
    """Where the warm CLI of this user lives; None when there is no suitable place."""
    if os.environ.get("PORTSIDE_WARM", "1") == "0":
        return None
    override = os.environ.get("PORTSIDE_WARM_DIR")
    if override:
        return override
    # one per installation, so that two (another venv, another checkout) do not take
    # turns replacing each other's as stale
    key = 0
    for byte in f"{sys.executable}:{__file__}".encode():
        key = (key * 131 + byte) & 0xFFFFFFFF
    if os.getuid() == 0:
        return f"/run/portside-warm/{key:08x}"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return f"{xdg}/portside-warm/{key:08x}" if xdg else None


def verb_of(args: list[str]) -> str | None:
    """The verb of a command line whose global options are all the plain ones, else None."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _GLOBAL_WITH_VALUE:
            i += 2
        elif arg.startswith("--") and arg.partition("=")[0] in _GLOBAL_WITH_VALUE:
            i += 1
        else:
            return None if arg.startswith("-") else arg
    return None


class _suppress:
    """contextlib.suppress without importing contextlib: it loads collections and
    functools, ~7 ms of every caller's start-up."""

    def __init__(self, *kinds: type[BaseException]) -> None:
        self._kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> bool:
        return kind is not None and issubclass(kind, self._kinds)


_AFTER_REPLY: list[Callable[[], None]] | None = None  # a list in a warm worker


def after_reply(work: Callable[[], None]) -> None:
    """Run `work` once the caller has its exit status (in a warm worker; e.g. deleting the
    dirs `rm` renamed away), or now in a CLI that runs in its own process."""
    if _AFTER_REPLY is None:
        work()
    else:
        _AFTER_REPLY.append(work)


# ------------------------------------------------------------------- the caller's side


def code_tag() -> bytes:
    """The state of the code the warm CLI loaded: the interpreter binary, the installed
    packages and every portside source file. A server whose tag differs is stale."""
    parts = [sys.executable, str(os.stat(sys.executable).st_mtime_ns), sys.version]
    for entry in sys.path:  # a package installed or removed changes its site dir
        if entry.endswith("-packages"):
            with _suppress(OSError):
                parts.append(f"{entry}:{os.stat(entry).st_mtime_ns}")
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _walk(package, len(package), parts)
    return "\n".join(parts).encode("utf-8", "surrogateescape")


def context_tag() -> bytes:
    """The interpreter settings a caller must share with the warm CLI (they were fixed
    when it started): flags, search path, locale and PYTHON* variables."""
    env = sorted(
        f"{k}={v}"
        for k, v in os.environ.items()
        if k.startswith(("PYTHON", "LC_")) or k in ("LANG", "LANGUAGE")
    )
    parts = [
        repr(tuple(sys.flags)),
        repr(sys.warnoptions),
        repr(sorted(sys._xoptions.items())),
        *sys.path,
        *env,
    ]
    return "\n".join(parts).encode("utf-8", "surrogateescape")


def _walk(directory: str, strip: int, out: list[str]) -> None:
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.endswith(".py"):
            st = entry.stat(follow_symlinks=False)
            out.append(f"{entry.path[strip:]}:{st.st_mtime_ns}:{st.st_size}")
        elif entry.name != "__pycache__" and entry.is_dir(follow_symlinks=False):
            _walk(entry.path, strip, out)


def _flags() -> list[str]:
    """The interpreter flags of this process, so the server it starts shares them."""
    import subprocess  # only when a server is started

    return subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]


def _fields(items: Iterable[bytes]) -> list[bytes]:
    listed = list(items)
    return [str(len(listed)).encode(), *listed]


def _request() -> tuple[bytes, list[int]] | None:
    """The call as one packet and the descriptors that go with it (None: run it here)."""
    streams = (sys.stdin, sys.stdout, sys.stderr)
    if any(s is None or not hasattr(s, "encoding") for s in streams):
        return None
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            return None
    try:
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    mask = os.umask(0o022)
    os.umask(mask)
    argv = [os.fsencode(a) for a in sys.argv]
    fields = [
        b"1",
        code_tag(),
        context_tag(),
        str(mask).encode(),
        *(f"{s.encoding}/{s.errors}".encode() for s in streams),
        *_fields(argv),
        *_fields(os.fsencode(p) for p in sys.path),
        *_fields(k + b"=" + v for k, v in os.environb.items()),
    ]
    return b"\0".join(fields), [0, 1, 2, cwd]


def forward(args: list[str]) -> int | None:
    """Run `portside ARGS` in the warm CLI: its exit status, or None to run it here."""
    if verb_of(args) not in WARM_VERBS:
        return None
    directory = warm_dir()
    if directory is None:
        return None
    path = f"{directory}/{_SOCKET}"
    if len(os.fsencode(path)) > 107:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    except OSError:
        sock.close()
        _start_server(directory)
        return None
    try:
        if int.from_bytes(cred[4:8], sys.byteorder) != os.getuid():
            return None  # our stdio and environment go to our own user's server only
        return _call(sock, directory)
    finally:
        sock.close()


def _call(sock: _socket.socket, directory: str) -> int | None:
    request = _request()
    if request is None:
        return None
    data, fds = request
    mine, theirs = _socket.socketpair(
        _socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC
    )  # the lifeline: the worker dies when `mine` closes, i.e. when we do
    try:
        fds.append(theirs.fileno())
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
        try:
            sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        except OSError:
            return None
    finally:
        os.close(fds[3])
        theirs.close()
    pid = 0
    pending: list[int] = []
    sent: list[int] = []

    def relay(signum: int, _frame: object) -> None:
        if pid:
            sent.append(signum)
            with _suppress(OSError):
                os.kill(pid, signum)
        else:
            pending.append(signum)

    saved = {signum: _signal.signal(signum, relay) for signum in _FORWARDED}
    try:
        while True:
            try:
                reply = sock.recv(64)
            except OSError:  # reset: a stale or killed server with our call still queued
                reply = b""
            if reply.startswith(b"P"):
                pid = int(reply[1:])
                for signum in pending:
                    relay(signum, None)
                pending.clear()
            elif reply.startswith(b"X"):
                return int(reply[1:])
            elif reply == b"S":  # stale: it has gone; the next call starts a fresh one
                _start_server(directory)
                return None
            elif not reply or pid == 0:  # not taken (another context), or it went away
                return None if pid == 0 else _died(sent)
    finally:
        mine.close()
        for signum, handler in saved.items():  # when the CLI runs here after all
            _signal.signal(signum, handler)
        for signum in pending:
            _signal.raise_signal(signum)


DIED = b"Error: the warm CLI's worker for this call ended without an exit status (killed?)\n"


def _died(sent: list[int]) -> int:
    """The worker ended without a status: killed. End as it did, by the signal we passed
    on; else as portside's own failure, saying so (a bare 125 would tell nobody why)."""
    if sent:
        _signal.signal(sent[-1], _signal.SIG_DFL)
        os.kill(os.getpid(), sent[-1])
    with _suppress(OSError):
        os.write(2, DIED)
    return 125


def leave(code: int) -> None:
    """Exit with the worker's status (nothing of ours to flush or tear down)."""
    os._exit(code & 0xFF)


def _start_server(directory: str) -> None:
    """Start the warm CLI in the background unless one is starting or running already
    (it holds the lock for its whole life)."""
    import fcntl

    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return  # not a place only we can write to
        lock = os.open(f"{directory}/{_LOCK}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return
        os.set_inheritable(lock, True)
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.posix_spawn(
                sys.executable,
                [sys.executable, *_flags(), "-c", _BOOT, directory, str(lock), *sys.path],
                dict(os.environ),
                file_actions=[(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)],
                setsid=True,
            )
        finally:
            os.close(devnull)
    except OSError:
        pass
    finally:
        os.close(lock)


# ------------------------------------------------------------------- the warm CLI


def _preload() -> None:
    """Import what the served verbs use (a module that fails to load is left to the call)."""
    import importlib

    from portside.cli.main import COMMANDS

    names = [COMMANDS[v].partition(":")[0] for v in sorted(WARM_VERBS) if v in COMMANDS]
    names += [
        "portside.cli.app",
        "portside.cli.commands.attach",
        "portside.engine.inspect",
        "portside.engine.local",
        "portside.engine.logs",
        "portside.engine.networking",
        "portside.engine.specgen",
        "portside.engine.volumes",
        "portside.images.store",
        "portside.monitor.client",
        "portside.monitor.config",
        "portside.monitor.logread",
        "portside.network.api",
        "portside.network.cni.config",
        "portside.network.cni.invoke",
        "portside.network.cni.result",
        "portside.network.dns",
        "portside.network.netns",
        "portside.network.ports",
        "portside.oci.digest",
        "portside.oci.reference",
        "portside.runtime.seccomp",
        "portside.storage.layers",
        "portside.storage.overlay",
        "atexit",
        "difflib",
        "fcntl",
        "glob",
        "io",
        "select",
        "shlex",
        "sqlite3",
        "struct",
        "termios",
        "traceback",
        "tty",
    ]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            continue


def _own_context() -> tuple[object, ...]:
    return _context("self")


def _context(pid: str) -> tuple[object, ...]:
    """Namespaces, root directory, credentials and capabilities of process `pid`."""
    namespaces = tuple(os.readlink(f"/proc/{pid}/ns/{ns}") for ns in _NAMESPACES)
    root = os.stat(f"/proc/{pid}/root")
    with open(f"/proc/{pid}/status", "rb") as f:
        status = tuple(line for line in f if line.startswith(_STATUS_KEYS))
    return namespaces, (root.st_dev, root.st_ino), status


def serve(directory: str, lock: int) -> None:
    """The warm CLI's main loop (started by `_start_server`, holding its lock)."""
    import gc
    import socket

    os.chdir("/")
    own_tag = code_tag(), context_tag()  # before loading anything: an edit from now on
    # makes us stale
    _preload()
    gc.collect()
    gc.freeze()  # workers are forks: the collector must not copy the shared pages
    context = _own_context()
    path = f"{directory}/{_SOCKET}"
    pid_file = f"{directory}/{_PID}"
    tmp = f"{path}.{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with _suppress(FileNotFoundError):
        os.unlink(tmp)
    listener.bind(tmp)
    os.chmod(tmp, 0o600)  # the directory is ours alone already; this too, in case it is not
    listener.listen(128)
    os.rename(tmp, path)  # we hold the lock: no other server is starting
    with open(f"{pid_file}.tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(f"{pid_file}.tmp", pid_file)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)  # the kernel reaps the workers
    try:
        idle = float(os.environ.get("PORTSIDE_WARM_IDLE") or WARM_IDLE)
    except ValueError:
        idle = WARM_IDLE
    listener.settimeout(idle)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return  # idle
            except OSError:
                continue
            with conn:
                if not _serve_one(conn, listener, lock, own_tag, context):
                    return  # stale
    finally:
        for name in (path, pid_file):  # the lock is still ours: these are ours too
            with _suppress(OSError):
                os.unlink(name)
        os._exit(0)


def _serve_one(
    conn: socket.socket,
    listener: socket.socket,
    lock: int,
    own_tag: tuple[bytes, bytes],
    context: tuple[object, ...],
) -> bool:
    """Answer one call: fork its worker, or tell the caller to run it itself. False when
    we are stale and must go."""
    conn.settimeout(5.0)
    fds: list[int] = []
    try:
        data, ancdata, flags, _ = conn.recvmsg(_MAX_REQUEST, _socket.CMSG_SPACE(5 * 4))
        for level, kind, payload in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                n = len(payload) - len(payload) % 4
                fds += [int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, n, 4)]
        cred = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        peer_pid = int.from_bytes(cred[0:4], sys.byteorder)
        peer_uid = int.from_bytes(cred[4:8], sys.byteorder)
        fields = data.split(b"\0")
        if len(fds) != 5 or fields[0] != b"1" or flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC):
            conn.send(b"L")  # not a call we can read whole: the caller runs it itself
            return True
        if peer_uid != os.getuid():
            conn.send(b"L")  # checked first: another user may not make us leave as stale
            return True
        if fields[1] != own_tag[0]:
            conn.send(b"S")
            return False
        if fields[2] != own_tag[1] or _context(str(peer_pid)) != context:
            conn.send(b"L")
            return True
        child = os.fork()
        if child == 0:
            try:
                listener.close()
                os.close(lock)
                _worker(conn, fields, fds)
            finally:
                os._exit(125)
        return True
    except (OSError, ValueError, IndexError):
        return True
    finally:
        for fd in fds:
            with _suppress(OSError):
                os.close(fd)


def _worker(conn: socket.socket, fields: list[bytes], fds: list[int]) -> None:
    """Become the caller's CLI process and run its command; never returns."""
    import atexit
    import fcntl
    import io
    import select

    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    conn.settimeout(None)
    stdin, stdout, stderr, cwd, lifeline = fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    os.fchdir(cwd)
    for fd in (stdin, stdout, stderr, cwd):
        os.close(fd)
    fds.clear()  # closed here; the server closes its own copies
    os.set_inheritable(lifeline, False)
    # the caller's end of the lifeline closes when it exits: SIGIO, whose default ends us
    fcntl.fcntl(lifeline, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(lifeline, fcntl.F_SETFL, fcntl.fcntl(lifeline, fcntl.F_GETFL) | os.O_ASYNC)
    poller = select.poll()
    poller.register(lifeline, select.POLLIN)
    if poller.poll(0):
        os._exit(125)  # the caller left before we could watch it
    os.umask(int(fields[3]))
    encodings = [f.split(b"/", 1) if b"/" in f else [f, b"strict"] for f in fields[4:7]]
    i = 7
    n = int(fields[i])
    argv = [os.fsdecode(a) for a in fields[i + 1 : i + 1 + n]]
    i += 1 + n
    n = int(fields[i])
    sys.path[:] = [os.fsdecode(p) for p in fields[i + 1 : i + 1 + n]]
    i += 1 + n
    env = {}
    for item in fields[i + 1 :]:
        key, sep, value = item.partition(b"=")
        if sep:
            env[key] = value
    os.environb.clear()
    os.environb.update(env)
    sys.argv = argv
    streams = []
    for fd, (enc, errors) in zip((0, 1, 2), encodings, strict=True):
        buffered = open(fd, "rb" if fd == 0 else "wb", closefd=False)  # noqa: SIM115
        streams.append(
            io.TextIOWrapper(
                buffered,
                encoding=enc.decode(),
                errors=errors.decode(),
                newline="\n",
                line_buffering=fd == 2 or (fd == 1 and os.isatty(1)),
            )
        )
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]
    global _AFTER_REPLY
    _AFTER_REPLY = []
    conn.send(b"P%d" % os.getpid())
    code = _run(argv[1:])
    with _suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as the interpreter's exit when stdout is a closed pipe
    _signal.signal(_signal.SIGIO, _signal.SIG_IGN)
    with _suppress(OSError):
        conn.send(b"X%d" % (code & 0xFF))
    conn.close()
    if _AFTER_REPLY:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # a caller reading our output to its end sees it now
            os.dup2(null, fd)
        for work in _AFTER_REPLY:
            with _suppress(Exception):
                work()
    os._exit(code & 0xFF)


def _run(args: list[str]) -> int:
    """The CLI's own code, with the interpreter's treatment of how it ends."""
    from portside.cli.app import run

    try:
        result = run(args)
    except SystemExit as exc:
        result = exc.code
    except KeyboardInterrupt:
        return 130
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    if result is None:
        return 0
    if isinstance(result, int):
        return result
    with _suppress(OSError, ValueError):
        print(result, file=sys.stderr)
    return 1

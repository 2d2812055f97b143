"""portside-runtime run in a forked child of the monitor instead of a new interpreter.

Exec'ing `portside-runtime` starts a Python (~16 ms) and imports the runtime
(~14 ms), twice per container (`create`, `start`). When the configured runtime
is our own launcher for this very source tree, the monitor forks and the child
calls the runtime's `main(argv)` with exactly the argv, stdio and environment
the exec would have had, and exits with its code; with the zygote the
runtime's modules are already loaded. Any other runtime (runc, crun, a
different portside tree) is exec'ed as before.

The child is made to look like a fresh interpreter: default SIGCHLD and SIGHUP,
SIGPIPE and SIGXFSZ ignored (as Python's start-up leaves them), no blocked
signals, no wakeup fd, no descriptor but 0, 1 and 2, `sys.argv` the runtime's.
"""

# ruff: noqa: SIM105  (contextlib would load functools and collections into every monitor)
from __future__ import annotations

import _signal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

ENTRY = b"from portside.runtime.cli.main import main"
# Set (to anything but "" or "0") to always exec the runtime: the comparison the tests make.
EXEC_ENV = "PORTSIDE_MONITOR_RUNTIME_EXEC"
# What `create`, `start`, `kill`, `delete` and `exec` load (the zygote imports them
# once, shared by every fork); a name that no longer exists only costs speed.
RUNTIME_MODULES = (
    "portside.runtime.cli.main",
    "portside.runtime.cli.args",
    "portside.runtime.cli.common",
    "portside.runtime.cli.create",
    "portside.runtime.cli.start",
    "portside.runtime.cli.kill",
    "portside.runtime.cli.delete",
    "portside.runtime.cli.exec_",
    "portside.runtime.log",
    "portside.runtime.cgroupctl",
    "portside.runtime.cgroups",
    "portside.runtime.cgroups.v1",
    "portside.runtime.cgroups.v2",
    "portside.runtime.container",
    "portside.runtime.specconv",
    "portside.runtime.process.launcher",
    "portside.runtime.process.init",
    "portside.runtime.capabilities",
    "portside.runtime.rootfs",
    "portside.runtime.seccomp",
)

# Set for a zygote that loads the runtime's modules before it freezes (see zygote.py).
PRELOAD_ENV = "_PORTSIDE_ZYGOTE_RUNTIME"

_verdicts: dict[str, bool] = {}


def package_parent() -> str:
    """The directory that holds the `portside` package this monitor runs from."""
    import portside

    return os.path.dirname(os.path.dirname(os.path.realpath(portside.__file__)))


def is_own_runtime(path: str) -> bool:
    """Whether `path` is portside-runtime running this same portside source tree.

    Two forms qualify: the launcher `make venv` writes (scripts/portside-runtime.in,
    which puts our tree first on sys.path), and pip's console script in a
    virtualenv whose site-packages resolve `portside` to our tree.
    """
    verdict = _verdicts.get(path)
    if verdict is None:
        verdict = _verdicts[path] = _check(path)
    return verdict


def _check(path: str) -> bool:
    if os.environ.get(EXEC_ENV, "") not in ("", "0"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            head = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return False
    if not head.startswith(b"#!") or ENTRY not in head:
        return False
    ours = package_parent()
    for line in head.split(b"\n"):
        line = line.strip()
        if line.startswith(b"sys.path.insert(0, "):
            where = line[len(b"sys.path.insert(0, ") : -1].strip(b"'\"").decode("utf-8", "replace")
            return os.path.realpath(where) == ours
    interpreter = head[2:].split(b"\n", 1)[0].split()
    if not interpreter:
        return False
    return _venv_runs(os.path.dirname(os.path.dirname(interpreter[0].decode())), ours)


def _venv_runs(venv: str, ours: str) -> bool:
    """Whether the virtualenv at `venv` imports `portside` from the tree at `ours`."""
    lib = venv + "/lib"
    try:
        versions = [d for d in os.listdir(lib) if d.startswith("python")]
    except OSError:
        return False
    for version in versions:
        site = f"{lib}/{version}/site-packages"
        if os.path.isdir(site + "/portside"):
            return os.path.realpath(site + "/portside") == ours + "/portside"
        try:
            names = os.listdir(site)
        except OSError:
            continue
        for name in names:
            if name.endswith(".pth") and "portside" in name:
                try:
                    with open(f"{site}/{name}") as f:
                        lines = f.read().splitlines()
                except OSError:
                    continue
                if any(os.path.realpath(ln.strip()) == ours for ln in lines if ln.strip()):
                    return True
    return False


# (file, mtime_ns, size) of every portside module outside the monitor loaded in this
# process: the zygote's code tag covers only the monitor's own files
_loaded: list[tuple[str, int, int]] = []


def preload() -> None:
    """Import the runtime's command modules (the zygote does, before it freezes)."""
    for name in RUNTIME_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass
    record()


def record() -> None:
    """Note the source files of the portside modules loaded now (see `current`)."""
    _loaded.clear()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not name.startswith("portside.") or name.startswith("portside.monitor") or not path:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        _loaded.append((path, st.st_mtime_ns, st.st_size))


def current() -> bool:
    """Whether the loaded runtime code is still what is on disk.

    A zygote outlives an upgrade (or an edit) of the runtime for a while; its
    forks must then exec the runtime anew rather than run the old code.
    """
    for path, mtime, size in _loaded:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_mtime_ns != mtime or st.st_size != size:
            return False
    return True


def fork(argv: list[str], stdin: int, stdout: int, stderr: int) -> int:
    """Start the runtime's `main(argv[1:])` in a child with these fds as 0, 1, 2; its pid."""
    pid = os.fork()
    if pid == 0:
        _child(argv, stdin, stdout, stderr)
    return pid


def _child(argv: list[str], stdin: int, stdout: int, stderr: int) -> NoReturn:
    code = 1
    try:
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _signal.signal(_signal.SIGHUP, _signal.SIG_DFL)
        _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_IGN)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
        for target, fd in enumerate((stdin, stdout, stderr)):
            os.dup2(fd, target)
        os.closerange(3, max(os.sysconf("SC_OPEN_MAX"), 1024))  # close_range(2): one call
        sys.argv = list(argv)
        from portside.runtime.cli.main import main

        code = main(argv[1:])
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except BaseException:  # as the interpreter would: the trace on stderr, status 1
        try:
            import traceback

            traceback.print_exc()
        except BaseException:
            pass
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code & 0xFF if isinstance(code, int) else 1)


def _exit_status(code: object) -> int:
    """SystemExit's code as the interpreter turns it into a status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        sys.stderr.write(f"{code}\n")
    except BaseException:
        pass
    return 1

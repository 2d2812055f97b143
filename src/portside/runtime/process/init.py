"""The child side: namespaces, the root filesystem, the process's credentials, exec.

These functions run only in a freshly forked, single-threaded child of the
runtime (never in the runtime itself), and end in execve or posix._exit: stage1
enters/creates the namespaces and forks the init (so it is PID 1 of a new PID
namespace); `init` sets the container up and waits on the exec fifo.
Any failure is sent to the parent as one message and the child exits.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` builds enums at import
import _stat as stat  # the C module: stat.py only adds names to it
import posix
import sys

from portside.errors import PortsideError
from portside.linux import libc, pathops, syscalls
from portside.runtime import namespaces
from portside.runtime.process import sync
from portside.runtime.process.options import Options
from portside.runtime.specconv import Config, Process

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any, NoReturn

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _fail(ch: sync.Channel, err: BaseException) -> NoReturn:
    if isinstance(err, PortsideError):
        msg = str(err)
    elif isinstance(err, OSError):
        msg = f"{err.filename + ': ' if err.filename else ''}{(err.strerror or str(err)).lower()}"
    else:
        msg = f"{type(err).__name__}: {err}"
        if pathops.getenv("PORTSIDE_RUNTIME_DEBUG"):
            import traceback

            traceback.print_exc()
    try:
        ch.send(sync.ERROR, msg=msg)
    finally:
        posix._exit(1)


def _preload(cfg: Config, proc: Process) -> None:
    """Import now what later steps need: after pivot_root or joining the container's
    mount namespace, the runtime's own files (and libseccomp) are out of sight."""
    from portside.runtime import capabilities, rootfs  # noqa: F401

    if proc.terminal or (cfg.seccomp or {}).get("listenerPath"):
        import socket  # noqa: F401

        from portside.runtime import console  # noqa: F401
    if cfg.hooks:
        import subprocess  # noqa: F401

        from portside.runtime import hooks  # noqa: F401
    if cfg.seccomp:
        from portside.runtime import seccomp

        seccomp.prepare()


def stage1(cfg: Config, proc: Process, ch: sync.Channel, opts: Options) -> NoReturn:
    """Enter the namespaces, then fork the init into them and report its pid.

    With `opts.direct` this process is the init already (PID 1 of the namespace the
    runtime made for its children): it enters the other namespaces and goes on."""
    try:
        for fd in opts.close_fds:
            if fd >= 0:
                posix.close(fd)
        for path in opts.cgroup_join:  # still in the runtime's namespaces: the host's files
            _join_cgroup(path)
        early_hello = opts.late_cgroup and opts.join_pid is None
        if early_hello:  # nothing for the runtime to wait for: its cgroup2 move may begin
            ch.send(sync.HELLO, userns=False, late=True)
        _preload(cfg, proc)
        if proc.terminal:
            from portside.runtime import console

            if opts.console_socket is None:
                raise PortsideError("cannot allocate tty if no console socket is given")
            opts.console_conn = console.connect(opts.console_socket)
        listener = (cfg.seccomp or {}).get("listenerPath")
        if listener:
            from portside.runtime import console

            opts.seccomp_conn = console.connect(listener)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        own_user = False
        if opts.join_pid is not None:
            _join_container(opts.join_pid, cfg)
            ch.send(sync.HELLO, userns=False)
            ch.expect(sync.GO)
        else:
            joined = [(k, p) for k, p in cfg.namespaces if p is not None]
            for kind, path in joined:
                if kind == "user":
                    namespaces.join(kind, path)
            if cfg.has_new("user"):
                namespaces.unshare(["user"])
                own_user = True
            if not early_hello:
                ch.send(sync.HELLO, userns=own_user, late=opts.late_cgroup)
            if not opts.late_cgroup:
                ch.expect(sync.GO)
            if own_user or cfg.has("user"):
                posix.setresgid(0, 0, 0)
                posix.setresuid(0, 0, 0)
            for kind, path in joined:
                if kind != "user":
                    namespaces.join(kind, path)
            skip = ("user", "pid") if opts.direct else ("user",)
            new = [k for k, p in cfg.namespaces if p is None and k not in skip]
            namespaces.unshare(new)
            if cfg.time_offsets:
                namespaces.write_time_offsets(cfg.time_offsets)
        pid = 0 if opts.direct else posix.fork()
    except BaseException as e:
        _fail(ch, e)
    if pid:
        ch.send(sync.PID, pid=pid)
        posix._exit(0)
    try:
        if opts.is_exec:
            exec_process(cfg, proc, ch, opts)
        init(cfg, ch, opts)
    except BaseException as e:
        _fail(ch, e)


def _join_container(pid: int, cfg: Config) -> None:
    """exec: enter every namespace of the running init that differs from ours."""
    order = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")
    for kind in order:
        name = namespaces.PROC_NAMES[kind]
        theirs = f"/proc/{pid}/ns/{name}"
        try:
            if posix.stat(theirs).st_ino == posix.stat(f"/proc/self/ns/{name}").st_ino:
                continue
        except FileNotFoundError:
            continue
        namespaces.join(kind, theirs)
        if kind == "user":
            posix.setresgid(0, 0, 0)
            posix.setresuid(0, 0, 0)


def init(cfg: Config, ch: sync.Channel, opts: Options) -> NoReturn:
    from portside.runtime import rootfs

    posix.setsid()
    if cfg.has_new("network"):
        namespaces.loopback_up()
    rootfs.prepare_root(cfg)

    def joined_cgroup() -> str | None:
        """Ready for the cgroup mount: the cgroup2 directory the runtime is moving us into
        (see launcher._spawn), after waiting for it where it cannot be named, or for the
        cgroup the runtime made after the fork (we move ourselves into it then)."""
        if opts.cgroup_wait or opts.join_on_go:
            go = ch.expect(sync.GO)
            for path in go.get("join") or ():
                _join_cgroup(path)
            opts.cgroup_wait = opts.join_on_go = False
        return opts.cgroup2_dir

    rootfs.mount_all(cfg, before_cgroupfs=joined_cgroup)
    joined_cgroup()
    console_slave = None
    master = -1
    proc = cfg.process
    if proc.terminal:
        from portside.runtime import console

        ptmx = rootfs.secure_join(cfg.rootfs, "/dev/pts/ptmx")
        if not pathops.exists(ptmx):
            ptmx = "/dev/ptmx"
        master, console_slave = console.open_pty(ptmx)
    rootfs.setup_dev(cfg, console_slave)
    hooks = cfg.hooks
    if hooks.get("prestart") or hooks.get("createRuntime") or hooks.get("createContainer"):
        ch.send(sync.HOOKS)
        msg = ch.expect(sync.OK)
        from portside.runtime.hooks import run_hooks

        run_hooks("createContainer", hooks.get("createContainer", []), msg["state"])
    # as runc: a missing working directory is made (before the root goes read-only)
    cwd = rootfs.secure_join(cfg.rootfs, proc.cwd)
    if not pathops.isdir(cwd):
        pathops.makedirs(cwd, 0o755, exist_ok=True)
    fifo = opts.fifo_fd
    if hooks.get("startContainer") or (cfg.seccomp or {}).get("listenerPath"):
        opts.host_pid = _host_pid()
    if opts.no_pivot:
        rootfs.move_root(cfg.rootfs)
    else:
        rootfs.pivot(cfg.rootfs)
    if console_slave is not None:
        from portside.runtime import console

        slave_in_root = console_slave
        if console_slave.startswith(cfg.rootfs + "/"):
            slave_in_root = console_slave[len(cfg.rootfs) :]
        console.send_master(opts.console_conn, master, "/dev/ptmx")
        posix.close(master)
        console.attach(slave_in_root, proc.console_size)
    if cfg.hostname is not None:
        syscalls.kernel.sethostname(cfg.hostname)
    if cfg.domainname is not None:
        syscalls.kernel.setdomainname(cfg.domainname)
    for key, value in cfg.sysctl.items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
    for path in cfg.readonly_paths:
        rootfs.readonly_path(path)
    for path in cfg.masked_paths:
        rootfs.mask_path(path)
    if cfg.readonly_root:
        rootfs.readonly_root()
    if cfg.personality is not None:
        libc.personality(cfg.personality)
    if not opts.no_new_keyring:
        _new_session_keyring(cfg)
    finish(cfg, proc, ch, opts, fifo)


def _join_cgroup(tasks: str) -> None:
    """Move this (single-threaded) process into the cgroup whose `tasks` file this is."""
    try:
        fd = posix.open(tasks, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, b"0")
        finally:
            posix.close(fd)
    except OSError as e:
        where = pathops.dirname(tasks)
        raise PortsideError(
            f"cannot join cgroup {where}: {(e.strerror or str(e)).lower()}"
        ) from None


def exec_process(cfg: Config, proc: Process, ch: sync.Channel, opts: Options) -> NoReturn:
    """exec: a new process in the container's namespaces (already joined by stage1)."""
    if proc.terminal:
        from portside.runtime import console

        posix.setsid()
        master, slave = console.open_pty("/dev/ptmx")
        console.send_master(opts.console_conn, master, "/dev/ptmx")
        posix.close(master)
        console.attach(slave, proc.console_size)
    finish(cfg, proc, ch, opts, -1)


def _host_pid() -> int:
    """Our pid as the host sees it (before pivot, /proc is still the host's)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[1])
    return 0


def _new_session_keyring(cfg: Config) -> None:
    """A fresh session keyring, so containers do not share the caller's keys."""
    try:  # noqa: SIM105 - contextlib costs start-up time
        libc.syscall(250, 1, None)  # keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)
    except OSError:
        pass


def finish(cfg: Config, proc: Process, ch: sync.Channel, opts: Options, fifo: int) -> NoReturn:
    """Credentials, limits, seccomp, then wait for `start` and exec."""
    from portside.runtime import capabilities

    if proc.apparmor:
        with open("/proc/self/attr/apparmor/exec", "w") as f:
            f.write(f"exec {proc.apparmor}")
    if proc.selinux_label:
        with open("/proc/self/attr/exec", "w") as f:
            f.write(proc.selinux_label)
    if proc.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(proc.oom_score_adj))
        except OSError as e:
            raise PortsideError(
                f"failed to set oom_score_adj to {proc.oom_score_adj}: {(e.strerror or '').lower()}"
            ) from None
    for kind, soft, hard in proc.rlimits:
        try:
            libc.setrlimit(kind, _rlim(soft), _rlim(hard))
        except OSError as e:
            reason = (e.strerror or str(e)).lower()
            raise PortsideError(f"error setting rlimit type {kind}: {reason}") from None
    env = list(proc.env)
    posix.chdir("/")
    _try_chdir(proc.cwd)
    path = _look_path(proc.args[0], env)
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + _home(proc.uid))
    seccomp_fd: int | None = None
    if cfg.seccomp and not proc.no_new_privileges:
        seccomp_fd = _load_seccomp(cfg)
    last = capabilities.last_cap()
    if proc.caps is not None:
        capabilities.drop_bounding(proc.caps["bounding"], last)
    _set_user(cfg, proc)
    if proc.caps is not None:
        capabilities.apply(proc.caps, last)
    if proc.umask is not None:
        posix.umask(proc.umask)
    posix.chdir(proc.cwd)
    if proc.no_new_privileges:
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
    if cfg.seccomp and proc.no_new_privileges:
        seccomp_fd = _load_seccomp(cfg)
    if seccomp_fd is not None:
        _send_seccomp_fd(cfg, opts, seccomp_fd)
    for fd in range(3, 3 + opts.preserve_fds):
        try:  # noqa: SIM105 - contextlib costs start-up time
            posix.set_inheritable(fd, True)
        except OSError:
            pass
    ch.send(sync.READY)
    started = False
    if opts.start_on_pipe:
        if ch.recv()["t"] != sync.START:
            posix._exit(1)  # the runtime went away without starting us
        started = True
    ch.close()  # with start_on_pipe, the runtime's cue that we are past the start
    if fifo >= 0:
        w = posix.open(f"/proc/self/fd/{fifo}", posix.O_WRONLY | posix.O_CLOEXEC)
        posix.write(w, b"0")
        posix.close(w)
        posix.close(fifo)
        started = True
    if started:
        start_hooks = cfg.hooks.get("startContainer")
        if start_hooks:
            from portside.runtime.hooks import run_hooks

            state = {
                "ociVersion": "1.3.0",
                "id": opts.id,
                "status": "running",
                "pid": opts.host_pid,
                "bundle": cfg.bundle,
            }
            if cfg.annotations:
                state["annotations"] = cfg.annotations
            run_hooks("startContainer", start_hooks, state)
    _reset_signals()
    # nothing of the runtime's or its caller's leaks in: only stdio and --preserve-fds
    posix.closerange(3 + opts.preserve_fds, 1 << 20)
    try:
        posix.execve(path, proc.args, dict(e.split("=", 1) for e in env if "=" in e))
    except OSError as e:
        print(f"exec {path}: {(e.strerror or '').lower()}", file=sys.stderr)
    posix._exit(127)


def _rlim(v: int) -> int:
    return -1 if v >= 2**63 else v


def _try_chdir(cwd: str) -> None:
    try:  # noqa: SIM105 - contextlib costs start-up time
        posix.chdir(cwd)
    except OSError:
        pass  # it may be readable only by the container user: retried after the switch


def _set_user(cfg: Config, proc: Process) -> None:
    setgroups_allowed = True
    if cfg.has("user"):
        try:
            with open("/proc/self/setgroups") as f:
                setgroups_allowed = f.read().strip() == "allow"
        except OSError:
            pass
    if setgroups_allowed:
        libc.setgroups(proc.additional_gids)
    elif proc.additional_gids:
        raise PortsideError("cannot set additional gids: setgroups is denied in this namespace")
    posix.setresgid(proc.gid, proc.gid, proc.gid)
    libc.prctl(libc.PR_SET_KEEPCAPS, 1)
    posix.setresuid(proc.uid, proc.uid, proc.uid)
    libc.prctl(libc.PR_SET_KEEPCAPS, 0)


def _home(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def _look_path(arg0: str, env: list[str]) -> str:
    """The executable as exec would find it, or runc's error for a missing one."""
    if "/" in arg0:
        try:
            st = posix.stat(arg0)
        except OSError as e:
            raise PortsideError(
                f'exec: "{arg0}": stat {arg0}: {(e.strerror or "").lower()}'
            ) from None
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise PortsideError(f'exec: "{arg0}": permission denied')
        return arg0
    path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    for d in path.split(":"):
        cand = pathops.join(d or ".", arg0)
        try:
            st = posix.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise PortsideError(f'exec: "{arg0}": executable file not found in $PATH')


def _load_seccomp(cfg: Config) -> int | None:
    from portside.runtime import seccomp

    return seccomp.load_seccomp(cfg.seccomp or {})


def _send_seccomp_fd(cfg: Config, opts: Options, fd: int) -> None:
    """SCMP_ACT_NOTIFY: the listener fd goes to linux.seccomp.listenerPath with the state."""
    if opts.seccomp_conn is None:
        posix.close(fd)
        return
    import socket

    from portside.runtime import seccomp

    state: dict[str, Any] = {
        "ociVersion": "1.3.0",
        "id": opts.id,
        "status": "creating",
        "pid": opts.host_pid,
        "bundle": cfg.bundle,
    }
    meta = (cfg.seccomp or {}).get("listenerMetadata", "")
    try:
        socket.send_fds(opts.seccomp_conn, [seccomp.listener_message(state, metadata=meta)], [fd])
    finally:
        opts.seccomp_conn.close()
        posix.close(fd)


def _reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ and handles SIGINT: undo that before exec."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])

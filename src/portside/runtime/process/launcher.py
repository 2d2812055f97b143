"""The parent side: fork the stages, answer their messages, record the container.

Usually the init is our own child: we unshare the PID namespace for our children,
fork it (PID 1 there), and restore our own at once. When the PID namespace must
be made inside the container's user namespace, be joined by path, or come with a
time namespace, an intermediate stage enters those and forks the init; we are a
child subreaper then, so the init (a grandchild) is reparented to us when the
stage exits. Either way, once the runtime exits the init goes to the runtime's
own caller (its nearest subreaper): the caller of `create` ends up as the init's
parent, as with runc.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` builds enums at import
import posix
import time

from portside.errors import CgroupError, InvalidDocument, RuntimeFailure
from portside.linux import libc, pathops
from portside.linux.procfs import process_start_time
from portside.runtime import cgroupctl, namespaces
from portside.runtime.container import Container, now_rfc3339
from portside.runtime.process import sync
from portside.runtime.process.options import Options
from portside.runtime.specconv import Config, Process

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def make_cgroup(cid: str, cfg: Config, systemd: bool) -> Any:
    mgr = cgroupctl.create(cid, cfg.cgroups_path, systemd=systemd)
    mgr.create()
    try:
        mgr.apply_resources(cfg.resources)
    except BaseException:
        mgr.destroy()
        raise
    return mgr


# where compiled seccomp programs are kept, under the state root: a name no container
# id can take (validate_id refuses "@"), so `list` and `create` never see it as one
SECCOMP_CACHE = "@seccomp"


def prepare_seccomp(cfg: Config, root: str | None = None) -> None:
    """Compile the filter here, before any fork: a bad profile is a config error that
    leaves nothing behind, and the child inherits the compiled program. With the state
    `root`, through its cache: compiling the default profile costs ~25 ms a container."""
    if not cfg.seccomp:
        return
    from portside.runtime import seccomp

    cache_dir = None  # not before the root exists: Container.new makes it 0700
    if root is not None and pathops.isdir(root):
        cache_dir = pathops.join(root, SECCOMP_CACHE)
    try:
        seccomp.prepare(cfg.seccomp, cache_dir=cache_dir)
    except ValueError as e:
        raise InvalidDocument(str(e)) from None


def _spawn(
    cfg: Config,
    proc: Process,
    opts: Options,
    mgr: Any,
    on_pid: Callable[[int], None] | None = None,
    make_mgr: Callable[[], Any] | None = None,
) -> tuple[int, sync.Channel]:
    """Fork stage 1 (the init itself with `opts.direct`), finish its cgroup and id maps,
    and learn the init's pid (`on_pid` gets it as soon as it is known, while the child
    is still at work).

    With `make_mgr` (`opts.join_on_go`, create's common case) the cgroup is made after
    the fork, while the init enters its namespaces and mounts its root; GO then names
    the files it moves itself through, before its cgroup mount. Otherwise the cgroup
    exists before the fork, so stage 1 moves itself into what it can first thing
    (`opts.cgroup_join`, see CgroupManager.self_join_files). Only a user namespace (its
    id maps) or a new cgroup namespace (rooted where stage 1 stands) makes stage 1 wait
    for us (GO) before it goes on.
    """
    parent_ch, child_ch = sync.Channel.pair()
    pidns = -1
    if not opts.direct:
        libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    elif cfg.has_new("pid"):
        # our next child is PID 1 of a new namespace; ours is restored right after
        pidns = posix.open("/proc/self/ns/pid", posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            namespaces.unshare(["pid"])
        except BaseException:
            posix.close(pidns)
            raise
    stage = -1
    born_in = _cgroup2_birthplace(opts, mgr)
    born_there = False
    try:
        stage, born_there = _fork(born_in)
    finally:
        if born_in >= 0:
            posix.close(born_in)
        if pidns >= 0:
            if stage != 0:
                libc.setns(pidns, libc.CLONE_NEWPID)
            posix.close(pidns)
    if stage == 0:
        parent_ch.close()
        from portside.runtime.process.init import stage1

        stage1(cfg, proc, child_ch, opts)
    child_ch.close()
    try:
        if make_mgr is not None:
            mgr = make_mgr()  # beside the child, which joins it on GO
        # stage 1 has moved itself into its v1 cgroups by now (unless it joins on GO)
        hello = parent_ch.expect(sync.HELLO)
        late = bool(hello.get("late"))
        if not late:
            if mgr is not None:
                mgr.add_process_except_self_joined(stage)
            if hello.get("userns"):
                namespaces.write_id_maps(stage, cfg.uid_mappings, cfg.gid_mappings)
            parent_ch.send(sync.GO)
        if opts.join_on_go and mgr is not None:
            try:  # noqa: SIM105 - contextlib costs start-up time
                parent_ch.send(sync.GO, join=mgr.self_join_files())
            except OSError:
                pass  # the child is gone: its error (or EOF) is what gets reported
        pid = stage if opts.direct else _init_pid(parent_ch)
        if on_pid is not None:
            on_pid(pid)
        if late and mgr is not None and not born_there:
            # a cgroup2 move takes the kernel's threadgroup lock, whose first taking waits
            # an RCU grace period: the init carries on meanwhile, its cgroup mount told the
            # directory (opts.cgroup2_dir), unless it must wait for us (opts.cgroup_wait)
            try:
                mgr.add_process_except_self_joined(pid)
            except Exception:
                _init_error(parent_ch)
                raise
            if opts.cgroup_wait:
                parent_ch.send(sync.GO)
    except BaseException:
        _kill_wait(stage)
        parent_ch.close()
        raise
    finally:
        cgroupctl.cool_down()  # joined (or failed): the no-op migrations are done
    if not opts.direct:
        posix.waitpid(stage, 0)
    return pid, parent_ch


def _cgroup2_birthplace(opts: Options, mgr: Any) -> int:
    """An fd of the cgroup2 directory the init may be born in, or -1.

    Only where the runtime would move the init there late (the init's other cgroups it
    joins itself; with `opts.join_on_go` the directory is made before the fork, the
    rest after it) and this process has no other thread (see libc.fork_into_cgroup): a
    library caller's, or a cgroup warm-up thread, means the usual fork."""
    if not (opts.direct and opts.late_cgroup) or opts.cgroup_wait:
        return -1
    if opts.is_exec or opts.join_pid is not None:
        return -1
    path = opts.cgroup2_dir
    if not path:
        return -1
    if mgr is not None:
        if path != mgr.deferred_join_dir():
            return -1
    elif not opts.join_on_go:
        return -1  # no cgroup at all
    try:
        if len(posix.listdir("/proc/self/task")) != 1:
            return -1  # only we start threads here: none can appear before the fork
    except OSError:
        return -1
    try:
        return posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError:
        return -1  # moved there afterwards, as without this


def _fork(cgroup2_fd: int) -> tuple[int, bool]:
    """os.fork(), or, given a cgroup2 directory, a fork whose child starts in it; the
    flag says whether it did."""
    if cgroup2_fd >= 0:
        try:
            return libc.fork_into_cgroup(cgroup2_fd), True
        except OSError:
            pass  # no clone3 (old kernel, a seccomp filter): moved there afterwards
    return posix.fork(), False


def plan_cgroup_join(cfg: Config, opts: Options, mgr: Any) -> None:
    """What the child does about its cgroup (set before the fork): the files it moves
    itself through, and whether the init waits for the runtime before its cgroup mount
    (a cgroup2 directory that cannot be named to it instead, or a joined mount namespace
    where the host's path may mean nothing)."""
    if mgr is None:
        return
    opts.cgroup_join = mgr.self_join_files()
    if not joins_mount_ns(cfg):
        opts.cgroup2_dir = mgr.deferred_join_dir()
    opts.cgroup_wait = (
        opts.late_cgroup
        and opts.cgroup2_dir is None
        and (not opts.cgroup_join or mgr.deferred_join_dir() is not None)
    )


def _init_pid(ch: sync.Channel) -> int:
    """Stage 1 reports the pid of the init it forked."""
    # the init writes to the same pipe as stage 1: its first message may come first
    early = []
    while True:
        msg = ch.recv()
        if msg["t"] in (sync.PID, sync.ERROR, sync.EOF):
            break
        early.append(msg)
    if msg["t"] == sync.ERROR:
        raise RuntimeFailure(str(msg.get("msg")))
    if msg["t"] == sync.EOF:
        raise RuntimeFailure("container init exited before it was set up")
    for m in early:
        ch.push_back(m)
    return int(msg["pid"])


def _init_error(ch: sync.Channel) -> None:
    """A failed cgroup move most likely means the init failed and exited: say why."""
    msg = ch.recv()
    if msg["t"] == sync.ERROR:
        raise RuntimeFailure(str(msg.get("msg"))) from None


def joins_mount_ns(cfg: Config) -> bool:
    return any(kind == "mount" and path is not None for kind, path in cfg.namespaces)


def _kill_wait(pid: int) -> None:
    try:
        posix.kill(pid, signal.SIGKILL)
        posix.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def write_pid_file(path: str, pid: int) -> None:
    path = pathops.abspath(path)
    tmp = pathops.join(pathops.dirname(path), f".{pathops.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    posix.rename(tmp, path)


def create(
    root: str,
    cid: str,
    bundle: str,
    *,
    console_socket: str | None = None,
    pid_file: str | None = None,
    no_pivot: bool = False,
    no_new_keyring: bool = False,
    preserve_fds: int = 0,
    systemd: bool = False,
    detached: bool = True,
    exec_fifo: bool = True,
    start_at_once: bool = False,
) -> Container:
    """Build the container and leave its init blocked on the exec fifo.

    Without `exec_fifo` (`run`, which starts it at once) the init waits for START on
    the sync pipe instead, held in `Container.start_channel` for start(): no fifo to
    make, open and remove on the state directory's filesystem. With `start_at_once`
    too, and nothing that must happen between create and start (no pid file, console
    socket, poststart or startContainer hook), it does not wait at all: it goes on
    past READY (`Container.started`), which spares `run` a round trip whose two
    wake-ups sat on the container's critical path."""
    from portside.runtime import specconv

    cfg = specconv.convert(specconv.load_spec(bundle), bundle)
    if cfg.warnings:
        from portside.runtime import log

        for w in cfg.warnings:
            log.warning(w)
    prepare_seccomp(cfg, root)
    if cfg.process.terminal and console_socket is None and detached:
        raise RuntimeFailure(
            "cannot allocate tty if runc will detach without setting console socket"
        )
    c = Container.new(root, cid)
    made: list[Any] = []
    premade = ""  # a cgroup2 directory made before the fork for the init to be born in
    pid = 0
    ch: sync.Channel | None = None
    fifo_fd = -1
    try:
        opts = Options()
        opts.id = cid
        if exec_fifo:
            posix.mkfifo(c.fifo, 0o622)
            posix.chmod(c.fifo, 0o622)  # past the umask: the container user must write it
            fifo_fd = posix.open(c.fifo, posix.O_PATH | posix.O_CLOEXEC)
            opts.fifo_fd = fifo_fd
        else:
            at_once = (
                start_at_once
                and not pid_file
                and console_socket is None
                and not cfg.hooks.get("poststart")
                and not cfg.hooks.get("startContainer")
            )
            opts.start_on_pipe = not at_once
        opts.console_socket = console_socket and pathops.abspath(console_socket)
        opts.close_fds = [c.lock_fd]
        opts.late_cgroup = not (cfg.has("user") or cfg.has_new("cgroup"))
        # one fork instead of two: we make the PID namespace the init is born into, unless
        # it must belong to the container's user namespace, be joined by path, or the init
        # needs a time namespace (those, like a PID namespace, apply to children only)
        opts.direct = not (
            cfg.has("user")
            or cfg.has("time")
            or any(k == "pid" and p is not None for k, p in cfg.namespaces)
        )
        layout = None
        if opts.direct and opts.late_cgroup and not joins_mount_ns(cfg):
            layout = cgroupctl.plan_v1(cid, cfg.cgroups_path, systemd=systemd)
        make_mgr: Callable[[], Any] | None = None
        if layout is None:
            made.append(make_cgroup(cid, cfg, systemd))
            mgr = made[0]
            plan_cgroup_join(cfg, opts, mgr)
        else:
            # the common case: the cgroup is made after the fork, beside the init's own
            # work (its imports, namespaces, mounts), and it joins it before its cgroup
            # mount (GO); only a hybrid host's cgroup2 directory, where it is born, first
            mgr = None
            opts.join_on_go = True
            opts.cgroup2_dir = cgroupctl.unified_dir(layout)
            if opts.cgroup2_dir and not pathops.isdir(opts.cgroup2_dir):
                try:
                    pathops.makedirs(opts.cgroup2_dir, 0o755, exist_ok=True)
                except OSError as e:  # worded as the manager's own mkdir
                    raise CgroupError(
                        f"failed to create cgroup {opts.cgroup2_dir}: {e.strerror}"
                    ) from None
                premade = opts.cgroup2_dir
            v1_layout = layout

            def make_v1() -> Any:
                made.append(cgroupctl.manager_for(cid, v1_layout))
                made[0].create()
                made[0].apply_resources(cfg.resources)
                return made[0]

            make_mgr = make_v1

        if not opts.late_cgroup or opts.cgroup_wait:
            cgroupctl.warm_up()  # a cgroup2 move then comes before the child goes on
        opts.no_pivot = no_pivot
        opts.no_new_keyring = no_new_keyring
        opts.preserve_fds = preserve_fds

        def record(init_pid: int) -> None:
            """The state, written while the child sets up (not after, on the way to
            start); a failed create removes it with the rest."""
            c.data.update(
                pid=init_pid,
                pid_start=process_start_time(init_pid),
                bundle=cfg.bundle,
                rootfs=cfg.rootfs,
                created=now_rfc3339(),
                annotations=cfg.annotations,
                config=cfg.spec,
                cgroup=cgroupctl.dump(made[0] if made else None),
            )
            c.save()

        pid, ch = _spawn(cfg, cfg.process, opts, mgr, record, make_mgr)
        c.manager = made[0] if made else None
        msg = ch.recv()
        if msg["t"] == sync.HOOKS:
            from portside.runtime.hooks import run_hooks

            state = c.hook_state("creating")
            run_hooks("prestart", cfg.hooks.get("prestart", []), state)
            run_hooks("createRuntime", cfg.hooks.get("createRuntime", []), state)
            ch.send(sync.OK, state=state)
            msg = ch.recv()
        if msg["t"] == sync.ERROR:
            raise RuntimeFailure(f"unable to start container process: {msg.get('msg')}")
        if msg["t"] != sync.READY:
            raise RuntimeFailure("container init exited before it was set up")
        if pid_file:
            write_pid_file(pid_file, pid)
        from portside.runtime import log

        log.debug(f"created container {cid}: init pid {pid}, bundle {cfg.bundle}")
        if not exec_fifo:
            if opts.start_on_pipe:
                c.start_channel, ch = ch, None
            else:
                c.started = True  # READY was its last word: it is past the start already
    except BaseException:
        if pid or c.pid:  # c.pid: known to record() even if _spawn failed later on
            _kill_wait(pid or c.pid)
        for made_mgr in made:
            try:  # noqa: SIM105 - contextlib costs start-up time
                made_mgr.destroy()
            except Exception:
                pass
        if premade and not made:
            try:  # noqa: SIM105 - contextlib costs start-up time
                posix.rmdir(premade)
            except OSError:
                pass
        c.remove_dir()
        raise
    finally:
        if ch is not None:
            ch.close()
        if fifo_fd >= 0:
            posix.close(fifo_fd)
    c.unlock()
    return c


def start(c: Container) -> None:
    """Release the init from the exec fifo, then run the poststart hooks."""
    if c.started:
        return  # create(start_at_once=True) let it go on (it had no poststart hooks)
    if c.start_channel is not None:
        _start_on_pipe(c)
        return
    status = c.status()
    if status != "created":
        if status == "stopped":
            raise RuntimeFailure("cannot start a container that has stopped")
        if status == "paused":
            raise RuntimeFailure("cannot start a paused container: resume it first")
        raise RuntimeFailure("cannot start an already running container")
    try:
        fd = posix.open(c.fifo, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    except FileNotFoundError:
        raise RuntimeFailure("cannot start an already running container") from None
    try:
        _await_fifo(c, fd)
    finally:
        posix.close(fd)
    try:  # noqa: SIM105 - contextlib costs start-up time
        posix.unlink(c.fifo)
    except FileNotFoundError:
        pass
    hooks = (c.config.get("hooks") or {}).get("poststart")
    if hooks:
        from portside.runtime.hooks import run_hooks_warn

        run_hooks_warn("poststart", hooks, c.hook_state("running"))


def _start_on_pipe(c: Container) -> None:
    """START for an init made by create(exec_fifo=False); the poststart hooks wait
    until it is past it (it closes its end of the pipe)."""
    ch, c.start_channel = c.start_channel, None
    hooks = (c.config.get("hooks") or {}).get("poststart")
    try:
        ch.send(sync.START)
        if hooks:
            ch.recv()  # EOF: the init has closed its end
    except OSError:
        raise RuntimeFailure("cannot start a container that has stopped") from None
    finally:
        ch.close()
    if hooks:
        from portside.runtime.hooks import run_hooks_warn

        run_hooks_warn("poststart", hooks, c.hook_state("running"))


def _await_fifo(c: Container, fd: int) -> None:
    """Wait for the init's byte on the exec fifo (it writes once our open lets its open
    through). A FIFO polls readable on the byte, and hung up only once a writer has come
    and gone: an init that dies before opening it is caught by the periodic check."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        if poller.poll(50):
            try:
                if posix.read(fd, 1):
                    return
            except BlockingIOError:
                pass
            if not c.alive():  # hung up without the byte
                break
            time.sleep(0.001)  # a hang-up that is not the end: do not spin on it
        elif not c.alive():
            break
    raise RuntimeFailure("cannot start a container that has stopped")


def signal_number(name: str) -> int:
    if name.isdigit():
        return int(name)
    up = name.upper()
    if not up.startswith("SIG"):
        up = "SIG" + up
    num = getattr(signal, up, None)
    if not isinstance(num, int) or up.startswith("SIG_"):
        raise RuntimeFailure(f"unknown signal {name!r}")
    return int(num)


def kill(c: Container, sig: int, all_processes: bool = False) -> None:
    status = c.status()
    if status == "stopped":
        raise RuntimeFailure("container not running")
    if all_processes:
        mgr = c.cgroup()
        pids = mgr.pids() if mgr is not None else [c.pid]
        if status == "paused" and mgr is not None:
            for p in pids:
                _signal(p, sig)
            mgr.thaw()
            return
        for p in pids:
            _signal(p, sig)
        return
    _signal(c.pid, sig)


def _signal(pid: int, sig: int) -> None:
    try:  # noqa: SIM105 - contextlib costs start-up time
        posix.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(c: Container, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while c.alive():
        try:  # noqa: SIM105 - contextlib costs start-up time
            _pid, _ = posix.waitpid(c.pid, posix.WNOHANG)
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"container {c.id} did not stop within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def destroy(c: Container) -> None:
    """Everything after the init is gone: poststop hooks, cgroup, state."""
    try:
        mgr = c.cgroup()
    except Exception as e:  # a damaged state must not make the container undeletable
        from portside.runtime import log

        log.warning(f"cannot restore the cgroup manager of {c.id}: {e}")
        mgr = None
    if mgr is not None and not _own_pid_namespace(c.config):
        # as runc: with a PID namespace of its own, the kernel has killed every process
        # in it (and waited for them) by the time its init is gone
        try:
            for p in mgr.pids():
                _signal(p, signal.SIGKILL)
        except Exception:
            pass
    hooks = (c.config.get("hooks") or {}).get("poststop")
    if hooks:
        from portside.runtime.hooks import run_hooks_warn

        run_hooks_warn("poststop", hooks, c.hook_state("stopped"))
    if mgr is not None:
        mgr.destroy()
    c.remove_dir()


def _own_pid_namespace(spec: dict[str, Any]) -> bool:
    """The spec asks for a new PID namespace (not one joined by path)."""
    for ns in (spec.get("linux") or {}).get("namespaces") or ():
        if isinstance(ns, dict) and ns.get("type") == "pid":
            return not ns.get("path")
    return False


def delete(c: Container, force: bool = False) -> None:
    c.lock()
    status = c.status()
    if status in ("running", "paused") and not force:
        raise RuntimeFailure(f"cannot delete container {c.id} that is not stopped: {status}")
    if status != "stopped":
        mgr = c.cgroup()
        if mgr is not None and status == "paused":
            mgr.thaw()
        _signal(c.pid, signal.SIGKILL)
        wait_gone(c)
    destroy(c)


def forward_signals(pid: int) -> None:
    """The foreground `run`/`exec` passes the signals it gets on to the process."""

    def handler(sig: int, _frame: object) -> None:
        _signal(pid, sig)

    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGWINCH,
    ):
        signal.signal(sig, handler)


def wait_exit(pid: int) -> int:
    """Wait for our (adopted) child and turn its end into a shell-style status."""
    while True:
        try:
            _, status = posix.waitpid(pid, 0)
        except ChildProcessError:
            return 255
        if posix.WIFEXITED(status):
            return posix.WEXITSTATUS(status)
        if posix.WIFSIGNALED(status):
            return 128 + posix.WTERMSIG(status)


def exec_process(
    c: Container,
    proc: Process,
    *,
    console_socket: str | None = None,
    pid_file: str | None = None,
    detach: bool = False,
    preserve_fds: int = 0,
    before_wait: Callable[[], None] | None = None,
) -> int:
    """Run one more process in a running container; returns its status unless detached."""
    from portside.runtime import specconv

    status = c.status()
    if status == "stopped":
        raise RuntimeFailure("cannot exec in a stopped container")
    if status == "paused":
        raise RuntimeFailure("cannot exec in a paused container")
    if proc.terminal and console_socket is None:
        raise RuntimeFailure(
            "cannot allocate tty if runc will detach without setting console socket"
        )
    cfg = specconv.convert(c.config, c.bundle)
    prepare_seccomp(cfg, c.root)
    opts = Options()
    opts.id = c.id
    opts.is_exec = True
    opts.join_pid = c.pid
    opts.console_socket = console_socket and pathops.abspath(console_socket)
    opts.preserve_fds = preserve_fds
    mgr = c.cgroup()
    plan_cgroup_join(cfg, opts, mgr)
    pid, ch = _spawn(cfg, proc, opts, mgr)
    try:
        msg = ch.recv()
    finally:
        ch.close()
    if msg["t"] != sync.READY:
        _kill_wait(pid)
        detail = msg.get("msg") if msg["t"] == sync.ERROR else "exec process exited early"
        raise RuntimeFailure(f"exec failed: unable to start container process: {detail}")
    if pid_file:
        write_pid_file(pid_file, pid)
    if detach:
        return 0
    forward_signals(pid)
    if before_wait is not None:
        before_wait()
    return wait_exit(pid)

"""A pre-loaded monitor that forks new monitors, so they share its memory.

A Python process costs ~3.5 MB of private memory (the interpreter's
initialised data, its heaps); conmon costs ~0.4 MB. Monitors forked from one
warm, `gc.freeze()`d image share those pages copy-on-write and keep only
what they touch, about a quarter of it. The zygote is a cache, not a daemon:
each monitor runs in its own session, the child of the zygote's forker (which
lets the kernel reap it) and then of init, killing either touches no
container, it exits when idle, and the client falls back to starting a monitor
directly whenever it is missing.

    python -I -S -c BOOT SOCKET_PATH READY_FD IDLE_SECONDS

Requests on the SOCK_SEQPACKET socket: one packet `{"config": PATH}` with the
engine's sync pipe attached (SCM_RIGHTS); the reply comes on that pipe, from
the new monitor, exactly as when it is started directly. The zygote reads and
validates the config itself before it forks (an invalid one is answered by the
zygote, in the same one-line form, and no monitor starts). The zygote does not
fork the monitor itself: its forker, a copy of it made right after the
freeze, does (see _start_forker), so that the zygote's own work for each
request is not paid for again by the monitor forked before it.

A zygote started for a container of our own portside-runtime loads the
runtime's modules before it freezes (so the monitors run `create` and `start`
in forks, see inproc.py; the client asks for it, _PORTSIDE_ZYGOTE_RUNTIME=1).
When the first container of a zygote started without them uses it anyway,
the zygote starts a successor that loads them, hands it the socket's name and
leaves; a zygote serving runc or crun never carries them.
"""

from __future__ import annotations

import _signal
import _socket
import gc
import marshal
import os
import select
import sys

from portside.monitor import inproc, jsonlite, main, proc
from portside.monitor.config import MonitorConfig
from portside.monitor.files import read_file, write_atomic
from portside.monitor.health import HealthState
from portside.monitor.logs import CRIWriter, JSONFileWriter

# what a monitor loads later anyway: load it once here, shared by every fork
import fcntl  # noqa: F401  isort: skip
import termios  # noqa: F401  isort: skip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SEQPACKET = _socket.SOCK_SEQPACKET
MESSAGE_MAX = 1 << 16  # of a request from the zygote to its forker (a config is ~1 kB)
_BYTEORDER = sys.byteorder  # of a descriptor passed in SCM_RIGHTS
_FROM_BYTES = int.from_bytes  # bound once (a lookup on int writes its descriptor's page)
_forker: _socket.socket | None = None  # the zygote's end of the forker's socket
_forker_pid = 0


def serve(socket_path: str, ready_fd: int, idle: float) -> None:
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    # bind under a temp name, then rename over the public one: a racing zygote loses cleanly
    tmp = f"{socket_path}.{os.getpid()}"
    listener = proc.unix_listener(tmp, SEQPACKET)
    os.rename(tmp, socket_path)
    pid_file = socket_path.removesuffix(".sock") + ".pid"
    write_atomic(pid_file, f"{os.getpid()}\n".encode())
    preloaded = os.environ.pop(inproc.PRELOAD_ENV, "") == "1"
    proc.preload_prctl()
    if preloaded:
        inproc.preload()
    # private dirty per monitor, medians of 6-13 zygotes x 5: runc 722 -> 706 (_gather) ->
    # 672 kB (_gather_calls); portside-runtime 740 -> 723 (_gather_calls) -> 700 kB (both)
    _fill_pools()  # what _gather allocates goes to fresh pools, side by side, not to holes
    _gather()  # amid shared pages (it fills malloc's holes itself, before the code copies)
    _gather_calls()
    _warm_up()
    _count_up()  # per monitor, runc: ~165 -> ~153 copied pages
    gc.collect()
    _fill_pools()
    _fill_heap()
    main.ZYGOTE_MODULES = frozenset(sys.modules)
    if preloaded:  # measured: ~15 kB less per monitor there; ~5 kB more in a runc zygote
        proc.trim_malloc()
    # what ran since the warm-up's (fills, first calls) evicted some of those entries
    _prime_method_cache(_HOT_LOOKUPS)
    gc.freeze()  # the collector must not touch (and so copy) the shared objects
    global _forker
    _forker = _start_forker(listener, ready_fd)
    # who waits for this (a zygote handing over) may have been killed meanwhile: serve
    # anyway, the socket's name is ours already and requests may be queued on it
    try:  # noqa: SIM105  (no contextlib in the zygote's image)
        os.write(ready_fd, b"ready\n")
    except OSError:
        pass
    os.close(ready_fd)
    poller = select.poll()
    poller.register(listener.fileno(), select.POLLIN)
    first = not preloaded
    while poller.poll(int(idle * 1000)):
        config = _serve_one(listener)
        if first and config:
            first = False
            if _uses_own_runtime(config) and _replace(socket_path, idle):
                while poller.poll(0):  # what reached us before the name moved on
                    _serve_one(listener)
                os._exit(0)
    # idle: leave, unless a newer zygote already took the name
    try:
        if int(read_file(pid_file)) == os.getpid():
            os.unlink(socket_path)
            os.unlink(pid_file)
    except (OSError, ValueError):
        pass
    os._exit(0)


def _start_forker(listener: _socket.socket, ready_fd: int) -> _socket.socket | None:
    """Fork the process that forks the monitors; the zygote's end of its socket, or None.

    Every page a process writes after a fork stays, as the original, with
    the child it forked last: the zygote's work for the next request (accept,
    receive, parse and validate the config) would be paid for by the monitor
    before. So the zygote does that work, and a pristine copy of it made
    right after the freeze, the forker, only receives and forks: it writes a
    few pages per monitor where the zygote writes tens. The forker leaves
    when the zygote does (its socket hangs up), after forking what was queued.
    """
    try:
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, SEQPACKET | _socket.SOCK_CLOEXEC)
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        listener.close()
        ours.close()
        os.close(ready_fd)
        _fork_loop(theirs)
    theirs.close()
    global _forker_pid
    _forker_pid = pid
    return ours


def _fork_loop(sock: _socket.socket) -> None:
    """The forker: take each message, fork its monitor; leave when the zygote hangs up.

    The monitor is forked once, not twice: it calls setsid and is the
    forker's child while the forker lives (SIGCHLD ignored: the kernel reaps
    it, no zombie), then init's or the nearest subreaper's, as a double-forked
    one. The forker receives, not the child: those pages are written again
    for each message either way, and the child then runs no receive code.
    """
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
    while True:
        try:
            data, ancdata, _, _ = sock.recvmsg(MESSAGE_MAX, _socket.CMSG_LEN(4))
        except OSError:
            break
        if not data:  # the zygote has gone and nothing is left queued
            break
        fds = _passed_fds(ancdata)
        if not fds:
            continue
        try:
            child = os.fork()
        except OSError:
            child = -1
        if child == 0:
            sock.close()
            os.setsid()
            path, state = marshal.loads(data)
            main.launch(
                path, fds[0], forked=True, cfg=MonitorConfig.from_state(state), detached=True
            )
            os._exit(1)
        for fd in fds:
            os.close(fd)
    os._exit(0)


def _passed_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors a message carried (one SCM_RIGHTS entry, as the client sends)."""
    return [
        _FROM_BYTES(d[:4], _BYTEORDER)
        for level, kind, d in ancdata
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(d) >= 4
    ]


def _serve_one(listener: _socket.socket) -> main.MonitorConfig | None:
    """Take one request and have its monitor forked; its config, or None."""
    conn = proc.accept(listener, SEQPACKET)
    if conn is None:
        return None
    try:
        conn.settimeout(5.0)
        data, ancdata, _, _ = conn.recvmsg(4096, _socket.CMSG_LEN(4))
    except OSError:
        conn.close()
        return None
    fds = _passed_fds(ancdata)
    try:
        request = jsonlite.loads(data, "zygote request")
        config = str(request["config"])
    except Exception:  # a bad request must not end the zygote
        config = ""
    cfg = None
    if config and fds:
        # read and validated here, in the zygote, not in each monitor; a bad config is
        # reported here, exactly as a monitor would
        try:
            cfg = main.read_config(config)
        except Exception as exc:  # whatever it is: one line, and the zygote lives on
            main._report(os.dup(fds[0]), {"error": main.config_error(config, exc)})
    if cfg is not None and not _to_forker(config, cfg, fds[0]):
        child = os.fork()
        if child == 0:
            listener.close()
            conn.close()
            if _forker is not None:
                _forker.close()
            main.launch(config, fds[0], forked=True, cfg=cfg)
            os._exit(1)
        os.waitpid(child, 0)  # it double-forks and exits at once
    for fd in fds:
        os.close(fd)
    conn.close()
    return cfg


def _to_forker(path: str, cfg: main.MonitorConfig, sync_fd: int) -> bool:
    """Hand the request to the forker; False if there is none (any more): fork it here."""
    global _forker
    if _forker is None:
        return False
    message = marshal.dumps((path, cfg.to_state()))
    if len(message) > MESSAGE_MAX:
        return False
    try:
        _forker.sendmsg(
            [message],
            [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, sync_fd.to_bytes(4, sys.byteorder))],
        )
    except OSError:  # it died: the zygote forks the monitors itself from now on
        _forker.close()
        _forker = None
        try:  # noqa: SIM105
            os.waitpid(_forker_pid, 0)
        except OSError:
            pass
        return False
    return True


def _warm_up() -> None:
    """Run the monitor's common paths here, before any fork.

    Python 3.11 rewrites a function's bytecode in place once it has run a few
    times (specialisation) and fills method caches; done here, every fork
    shares the result instead of each writing (and so copying) those pages.
    """
    doc = {
        "version": 1,
        "id": "warmup",
        "bundle": "/",
        "runtime": "/bin/true",
        "state_dir": "/dev",
        "log": {"driver": "k8s-file", "path": "/dev/null"},
        "restart": "on-failure:1",
        "healthcheck": {"test": ["CMD", "true"]},
    }
    text = jsonlite.dumps(doc)
    for _ in range(64):
        cfg = main.MonitorConfig(jsonlite.loads(text))
        for cls in (CRIWriter, JSONFileWriter):
            writer = cls("/dev/null")
            writer.write("stdout", b"line\npartial")
            writer.close()
        monitor = main.Monitor(cfg)
        jsonlite.dumps(monitor.state())
        proc.exit_code(0)
        cfg.restart.should_restart(1, 0, False)
        main._error_line(b'time="x" level=error msg="warm up"', "")
        main.MonitorConfig.from_state(cfg.to_state())
        timer = monitor.after(0.0, monitor.kill_now)  # what stop() schedules; never run
        timer.active = False
        monitor.watch(monitor.devnull, select.POLLIN, monitor.on_sigchld)
        monitor.unwatch(monitor.devnull)
        os.close(monitor.devnull)  # else 64 fds more: a monitor's fds were numbers past 64
    main.oom_counter_file(os.getpid())
    every, hot = _lookups(monitor, cfg)
    _prime_method_cache(every + hot)
    _HOT_LOOKUPS.extend(hot)  # again just before the freeze (see serve)
    # first calls resolve symbols and fill caches: do them here, for every fork to share
    # (prctl's: _count_up calls proc.set_subreaper(0))
    wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    _signal.set_wakeup_fd(_signal.set_wakeup_fd(wakeup_w, warn_on_full_buffer=False))
    _signal.signal(_signal.SIGCHLD, _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL))
    os.close(wakeup_r)
    os.close(wakeup_w)


# started this many times, a function is quickened when it starts next (CPython 3.11's
# QUICKENING_WARMUP_DELAY, less one; tests/unit/test_monitor_units.py holds it)
WARMUP_CALLS = 7


def _once_run_calls() -> list[tuple[Any, tuple[Any, ...]]]:
    """The functions a monitor runs once, each with arguments that end it at its first step.

    None for `self` fails at its first attribute access; a None path at its
    first system call; the rest return at once. None of them does anything
    on the way: no fd, file, process or signal setting comes of them.
    """
    from portside.monitor import logs

    mon = main.Monitor
    return [
        (mon.setup, (None,)),
        (mon.start_container, (None,)),
        (mon._create_in_helper, (None, (), {}, False, None)),
        (mon.running, (None, "")),
        (mon.run_loop, (None,)),
        (mon.on_sigchld, (None, 0)),
        (mon._output_handler, (None, 0)),
        (main.launch, (None, "")),
        (main._report, (None, b"")),
        (main._wake_only, (0, None)),
        (proc.unix_listener, (None, 0)),
        (proc.read_nonblocking, (-1,)),
        (proc.set_subreaper, (0,)),
        (logs.open_writer, ("none", "")),
    ]


def _count_up() -> None:
    """Start each function a monitor runs once WARMUP_CALLS times, so that its run quickens it.

    Python 3.11 runs a function in its generic form until its eighth start;
    from then on each instruction specialises itself for what it met the
    first time. The generic attribute load writes the reference counts of
    the name it looks up and of the descriptor it finds (interned names and
    slot descriptors, scattered over tens of pages the zygote shares); the
    specialised one reads the slot or dict entry it was made for and writes
    neither. A monitor runs setup, start_container and launch once: counted
    up to the eve of quickening here, they run specialised in every monitor.
    """
    for func, args in _once_run_calls():
        for _ in range(WARMUP_CALLS):
            try:  # noqa: SIM105  (no contextlib in the zygote's image)
                func(*args)
            except (AttributeError, TypeError):
                pass


def _gather() -> None:
    """Give the functions a monitor runs fresh objects, allocated side by side.

    Python 3.11 writes the reference count of every object it loads (a
    function by its global name, a constant, a default), and the first calls
    of a function count up in its code's header: each copies the whole page
    the object sits on, wherever the imports happened to put it. Fresh
    copies of those functions, of their code and of the constants and
    defaults it loads, made one after another on pages the allocator had
    free, put what a monitor touches on a few pages instead of dozens.
    """
    from portside.monitor import config, logs

    mon, cfg_cls, writer = main.Monitor, config.MonitorConfig, logs.LogWriter
    targets: list[tuple[object, str]] = [(main, n) for n in ("launch", "_report", "_wake_only")]
    targets += [(main, "_now"), (proc, "set_subreaper"), (proc, "unix_listener")]
    targets += [(proc, "read_nonblocking"), (proc, "accept"), (logs, "open_writer")]
    this = sys.modules[__name__]
    targets += [(config, "_restore"), (config, "_fill_config")]
    targets += [(this, "_fork_loop"), (this, "_passed_fds")]
    targets += [(writer, "__init__"), (writer, "reopen"), (cfg_cls, "from_state")]
    names: tuple[str, ...] = ("__init__", "setup", "watch", "unwatch", "start_container")
    names += ("_create_in_helper", "_helper_work", "on_init_exit")
    names += ("on_attach_accept", "on_control_accept")  # held by the handlers a monitor keeps
    names += ("_output_handler", "running", "run_loop", "on_sigchld", "emit", "after")
    targets += [(mon, n) for n in names]
    raws = [vars(holder)[name] for holder, name in targets]
    funcs: list[Any] = [raw.__func__ if isinstance(raw, classmethod) else raw for raw in raws]
    # the code a monitor quickens and specialises (writes), on a few pages at the heap's top
    _fill_heap()
    codes = []
    floor = 0
    for f in funcs:
        for _ in range(64):  # a copy that fell into a hole below the others stays there unused
            code = _padded(_fresh(f.__code__))
            if id(code) > floor:
                break
            _BALLAST.append(code)
        floor = id(code)
        codes.append(code)
    fresh: dict[object, object] = {}
    for (holder, name), raw, f, code in zip(targets, raws, funcs, codes, strict=True):
        wrapper = type(raw) if isinstance(raw, classmethod) else None
        new = type(f)(code, f.__globals__, f.__name__, _fresh(f.__defaults__))
        new.__kwdefaults__ = f.__kwdefaults__
        new.__qualname__, new.__doc__ = f.__qualname__, f.__doc__
        new.__module__, new.__annotations__ = f.__module__, f.__annotations__
        new.__dict__.update(f.__dict__)
        fresh[f] = new
        _GATHERED.append(new)
        if isinstance(holder, type):
            setattr(holder, name, new if wrapper is None else wrapper(new))
    # a module-level function is bound wherever it was imported to
    for m in (main, proc, logs, config, inproc, sys.modules[__name__]):
        space = vars(m)
        for key, value in list(space.items()):
            if type(value) is type(_gather) and value in fresh:
                space[key] = fresh[value]
    # what the forker loads for each request: on the pages its monitors write anyway
    for name in ("MESSAGE_MAX", "_BYTEORDER"):
        vars(this)[name] = _fresh(vars(this)[name])


# the C functions a monitor calls, by module: a monitor loads each through a copy of its
# module, as a partial (which calls it without writing its count), see _gather_calls
_CALLS = {
    "os": (
        *("close", "pipe", "pipe2", "waitpid", "fork", "unlink", "open", "getpid", "lseek"),
        *("write", "read", "set_inheritable", "set_blocking", "setsid"),
    ),
    "select": ("poll",),
    "_signal": ("signal", "set_wakeup_fd"),
    "time": ("monotonic",),
    "marshal": ("loads",),
    "_socket": ("CMSG_LEN",),
}


def _gather_calls() -> None:
    """Point the monitor's modules at copies of os, select, ... that are gathered too.

    `os.read(...)` writes the count of the module object `os` and of the
    function `read`, each on a page of its own among the objects made when
    the interpreter started. A copy of the module (the same dict entries)
    and a partial for each function a monitor calls, made side by side, are
    what it loads instead: a partial calls its function without touching it.
    """
    from _functools import partial

    from portside.monitor import files, logs

    copies: dict[int, object] = {}
    for name, calls in _CALLS.items():
        module = sys.modules[name]
        copy = type(module)(name, module.__doc__)
        space = vars(copy)
        space.update(vars(module))
        for call in calls:
            space[call] = partial(space[call])
        copies[id(module)] = copy
    # fresh, beside the partials, but a builtin still: a call of a partial is never
    # specialised, and each counts down in the caller's code (the forker's, per request)
    vars(sys.modules[__name__])["_FROM_BYTES"] = int.from_bytes
    for m in (main, proc, logs, files, sys.modules[__name__]):
        space = vars(m)
        for key, value in list(space.items()):
            if id(value) in copies and value is sys.modules.get(key):
                space[key] = copies[id(value)]


_MALLOC_OVER = 512  # bytes: a smaller object comes from pymalloc's pools, one per size class
_NOP = bytes([9, 0])  # opcode.opmap["NOP"], no argument


def _padded(code: Any) -> Any:
    """`code`, or a copy made longer than _MALLOC_OVER by unreachable NOPs after its end.

    Small code objects come from pymalloc, each size in a pool of its own:
    twenty short functions quickened in a monitor would copy a dozen pages.
    Padded, they come from malloc like the long ones, one after another.
    """
    short = _MALLOC_OVER + 64 - sys.getsizeof(code)
    if short <= 0:
        return code
    return code.replace(co_code=code.co_code + _NOP * (short // 2 + 1))


def _fresh(value: Any) -> Any:
    """A new object equal to `value` (or `value` itself: a singleton, or nothing to copy)."""
    kind = type(value)
    if (kind is str or kind is bytes) and len(value) > 1:
        return value[:1] + value[1:]
    if kind is int and not -5 <= value <= 256:
        return value + 1 - 1
    if kind is tuple and value:
        return tuple([_fresh(v) for v in value])
    if kind is frozenset and value:
        return frozenset([_fresh(v) for v in value])
    if kind is type(_fresh.__code__):
        return value.replace(co_consts=_fresh(value.co_consts))
    return value


def _lookups(
    monitor: main.Monitor, cfg: main.MonitorConfig
) -> tuple[list[tuple[object, str]], list[tuple[object, str]]]:
    """(object, name) for each name the monitor's code may look up on each object it uses,
    and those of the code a monitor runs (see _gather) and of the fields its config sets.
    """
    from portside.monitor import config, files, health, logs, protocol

    modules = [main, proc, inproc, jsonlite, files, logs, health, config, protocol]
    names: set[str] = set()
    codes = [v.__code__ for m in modules for v in vars(m).values() if hasattr(v, "__code__")]
    for m in modules:
        for v in vars(m).values():
            if isinstance(v, type) and v.__module__ == m.__name__:
                codes += [f.__code__ for f in vars(v).values() if hasattr(f, "__code__")]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes += [c for c in code.co_consts if hasattr(c, "co_names")]
    hot = _attribute_names([f.__code__ for f in _GATHERED])
    hot.update(config.MonitorConfig.__slots__, ("__init__",))
    special = {n for n in hot if n.startswith("__")}  # what is looked up on a class itself
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, SEQPACKET)
    theirs.close()
    objects: list[object] = [monitor, cfg, cfg.restart, cfg.healthcheck, monitor.poller, ours]
    objects += [main.AttachClient(ours), HealthState(cfg.healthcheck)]  # type: ignore[arg-type]
    objects += [CRIWriter("/dev/null"), os, _socket, select, _signal, sys, marshal, *modules]
    objects += [sys.modules["time"], {}, [], b"", bytearray(), "", 0]
    objects += [main.Timer(0.0, monitor.kill_now), main.Monitor, main.Timer, main.AttachClient]
    objects += [config.MonitorConfig, config.RestartPolicy, config.HealthConfig, HealthState]
    every = [(o, n) for o in objects for n in sorted((names | hot).intersection(dir(o)))]
    hot_pairs = [
        (o, n)
        for o in objects
        for n in sorted((special if isinstance(o, type) else hot).intersection(dir(o)))
    ]
    return every, hot_pairs


def _attribute_names(codes: list[Any]) -> set[str]:
    """The names this code (and the code nested in it) looks up as attributes.

    Not the names of its globals: those are found in a dict, never in the
    type cache, and priming them would only evict entries that are used.
    """
    import opcode

    ops = {opcode.opmap[n] for n in ("LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR")}
    found: set[str] = set()
    while codes:
        code = codes.pop()
        codes += [c for c in code.co_consts if hasattr(c, "co_names")]
        raw, extended = code.co_code, 0
        for i in range(0, len(raw), 2):
            op, arg = raw[i], raw[i + 1] | extended
            extended = arg << 8 if op == opcode.EXTENDED_ARG else 0
            if op in ops:
                found.add(code.co_names[arg])
    return found


def _prime_method_cache(lookups: list[tuple[object, str]]) -> None:
    """Look up, here, each name the monitor's code uses on the objects it uses.

    CPython keeps a cache of (type, name) -> attribute; a miss writes the
    entry and the reference counts of the name that goes in and the one that
    goes out: three scattered pages, copied by every monitor that misses. The
    entries made here are shared instead (warm-up calls alone leave misses:
    for the methods and attributes only a live monitor uses). The cache has
    a slot per (type's version, name's address): of two lookups that share
    one, the later stays, so the hot ones go last (see _lookups).
    """
    for obj, name in lookups:
        try:  # noqa: SIM105
            getattr(obj, name)
        except Exception:
            pass


def _uses_own_runtime(cfg: main.MonitorConfig) -> bool:
    """Whether this container's runtime is our own portside-runtime, run in forks."""
    return cfg.runtime_inprocess and inproc.is_own_runtime(cfg.runtime)


def _replace(socket_path: str, idle: float) -> bool:
    """Start a zygote that loads portside-runtime's modules first and wait till it serves.

    Its `create` and `start` then run in forks that have them already (see
    inproc.py). Loaded at start-up, before the warm-up and the freeze, they
    cost each monitor about half what loading them into a running zygote
    does; a zygote that serves runc or crun never loads them. The new zygote
    takes the socket's name over (rename) and the pid file; True once it is
    ready, and we may leave.
    """
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return False
    if len(argv) < 4 or argv[-3] != socket_path:
        return False
    ready_r, ready_w = os.pipe()
    try:
        os.set_inheritable(ready_w, True)
        argv[-2], argv[-1] = str(ready_w), repr(idle)
        env = dict(os.environ)
        env[inproc.PRELOAD_ENV] = "1"
        starter = os.posix_spawn(sys.executable, argv, env)
    except OSError:
        os.close(ready_r)
        return False
    finally:
        os.close(ready_w)
    try:
        poller = select.poll()
        poller.register(ready_r, select.POLLIN)
        ok = bool(poller.poll(30_000)) and os.read(ready_r, 16).startswith(b"ready")
    finally:
        os.close(ready_r)
        os.waitpid(starter, 0)
    return ok


_BALLAST: list[object] = []
_GATHERED: list[Any] = []  # the functions _gather made, for _lookups
_HOT_LOOKUPS: list[tuple[object, str]] = []  # see _prime_method_cache


def _fill_pools() -> None:
    """Take every free block of the allocator's partly used pools now, before any fork.

    A monitor's first allocations would otherwise land in those holes,
    scattered over pages the zygote shares, and copy a whole page for each
    few bytes; with the holes filled they go to fresh pools, side by side.
    The ballast stays allocated and untouched: shared by every fork.
    """
    free = _free_blocks()
    ballast = _BALLAST
    for size, count in free.items():
        for i in range(count):
            if size == 16:
                ballast.append(object())
            elif size == 32:
                ballast.append((1 << 40) + i)
            else:
                ballast.append(bytes(size - 33))  # 33 bytes of header and NUL


def _fill_heap() -> None:
    """Take malloc's free chunks below the top of its heap, as _fill_pools does the pools'.

    A monitor's larger blocks (over 512 bytes: not the pools') would land in
    those holes, amid pages the zygote shares; with them taken they come from
    the top of the heap, side by side.
    """
    holes = proc.malloc_holes()
    for size in (1 << 16, 1 << 14, 1 << 12, 1 << 10, 480):
        while holes > 0:
            block = bytes(size)
            left = proc.malloc_holes()
            if left >= holes:  # it came from the top: no hole that large is left
                del block
                break
            _BALLAST.append(block)
            holes = left


def _free_blocks() -> dict[int, int]:
    """Size class -> free blocks in its used pools, from the allocator's own statistics."""
    r, w = os.pipe()
    saved = os.dup(2)
    try:
        os.dup2(w, 2)
        sys._debugmallocstats()  # writes to the C stderr
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(w)
    try:
        text = os.read(r, 1 << 20).decode("ascii", "replace")
    finally:
        os.close(r)
    free = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 5 and all(f.isdigit() for f in fields):
            free[int(fields[1])] = int(fields[4])
    return free


def run() -> None:
    socket_path, ready_fd, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    os.set_inheritable(ready_fd, False)
    serve(socket_path, ready_fd, idle)

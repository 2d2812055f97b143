"""The monitor process: detach, start the container, then serve it until it is done.

One thread and one poll loop: timers, the SIGCHLD wakeup pipe, the
container's output, the attach and control sockets and the healthcheck probe
are all file descriptors or deadlines in the same loop, so there is no lock
and no thread (a thread would also cost ~8 MB of virtual stack per container).
"""

# ruff: noqa: SIM105  (contextlib would load functools and collections into every monitor)
from __future__ import annotations

import _signal
import _socket
import marshal  # the helper's report: C only, no Python parser run in the monitor
import os
import select
import sys
import time

from portside.errors import PortsideError, RuntimeFailure
from portside.linux.procfs import pid_alive
from portside.monitor import inproc, jsonlite, proc, protocol
from portside.monitor.config import MonitorConfig
from portside.monitor.files import read_file, rfc3339nano, write_atomic, write_json
from portside.monitor.health import HealthState
from portside.monitor.logs import LogWriter, open_writer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT
SEQPACKET = _socket.SOCK_SEQPACKET
STREAM = _socket.SOCK_STREAM
CLIENT_QUEUE_MAX = 1 << 20
# What the zygote had loaded when it forked us (None: not started by a zygote);
# a forked monitor imports nothing more (an import would copy pages into each).
ZYGOTE_MODULES: frozenset[str] | None = None
SIGNALS = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "KILL": 9,
    "USR1": 10,
    "USR2": 12,
    "TERM": 15,
}


def _now() -> float:
    return time.monotonic()


class Timer:
    __slots__ = ("active", "callback", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.active = True


class AttachClient:
    """One attached connection: its pending output and its detach-key state."""

    __slots__ = ("ctrl_p", "queue", "queued", "sent_input", "sock")

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.queue: list[bytes] = []
        self.queued = 0
        self.ctrl_p = False
        self.sent_input = False


class Monitor:
    # Slots, not a __dict__: past 30 attributes an instance dict stops sharing its keys
    # with the class and holds a reference to every name, which writes (and so copies)
    # the page of each of those ~35 interned strings in every forked monitor.
    __slots__ = (
        "attach_sock",
        "backoff_attempt",
        "cfg",
        "children",
        "clients",
        "control_sock",
        "controls",
        "devnull",
        "done",
        "handlers",
        "health",
        "health_timer",
        "init_pid",
        "last_exit",
        "log",
        "oom_base",
        "oom_file",
        "out_fds",
        "pid",
        "poller",
        "probe",
        "pty_fd",
        "replay",
        "restart_count",
        "restart_timer",
        "started_at",
        "started_mono",
        "status",
        "stdin_buf",
        "stdin_close_pending",
        "stdin_fd",
        "stop_timer",
        "stopped",
        "timers",
        "wakeup_r",
    )

    def __init__(self, cfg: MonitorConfig) -> None:
        self.cfg = cfg
        self.poller = select.poll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.timers: list[Timer] = []
        self.children: dict[int, Callable[[int], None]] = {}
        self.devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.log: LogWriter | None = None
        self.replay = bytearray()
        self.clients: dict[int, AttachClient] = {}
        self.controls: dict[int, tuple[_socket.socket, bytearray]] = {}
        # the container's side
        self.init_pid = 0
        self.out_fds: dict[int, str] = {}  # fd -> stream name (one pty master, or two pipes)
        self.stdin_fd = -1
        self.stdin_buf = bytearray()
        self.stdin_close_pending = False
        self.pty_fd = -1
        self.oom_file = ""
        self.oom_base = 0
        self.restart_count = 0
        self.stopped = False  # a stop was asked for: no restart
        self.stop_timer: Timer | None = None
        self.started_at = ""
        self.started_mono = 0.0
        self.status = "created"
        self.last_exit: dict[str, Any] = {}
        self.done = False
        self.backoff_attempt = 0
        self.restart_timer: Timer | None = None
        self.wakeup_r = -1
        self.pid = os.getpid()
        # healthcheck
        self.health: HealthState | None = None
        self.health_timer: Timer | None = None
        self.probe: dict[str, Any] | None = None

    # -- loop plumbing -------------------------------------------------------

    def watch(self, fd: int, events: int, handler: Callable[[int], None]) -> None:
        self.handlers[fd] = handler
        self.poller.register(fd, events)

    def unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def after(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(_now() + delay, callback)
        self.timers.append(timer)
        return timer

    def run_loop(self) -> None:
        while not self.done:
            self.timers = [t for t in self.timers if t.active]
            timeout = -1
            if self.timers:
                soonest = min(t.when for t in self.timers)
                timeout = max(0, int((soonest - _now()) * 1000) + 1)
            for fd, events in self.poller.poll(timeout):
                handler = self.handlers.get(fd)
                if handler is not None:
                    handler(events)
            now = _now()
            for timer in self.timers:
                if timer.active and timer.when <= now:
                    timer.active = False
                    timer.callback()

    def on_sigchld(self, _events: int) -> None:
        proc.read_nonblocking(self.wakeup_r)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            callback = self.children.pop(pid, None)
            if callback is not None:
                callback(status)

    # -- running the runtime -------------------------------------------------

    def spawn_runtime(self, args: Sequence[str], stdin: int, stdout: int, stderr: int) -> int:
        """Start `RUNTIME ARGS...` with these fds as 0, 1, 2; its pid.

        portside-runtime of our own tree runs in a forked child (inproc.py),
        any other runtime is exec'ed.
        """
        cfg = self.cfg
        argv = cfg.runtime_argv(*args)
        if cfg.runtime_inprocess and inproc.is_own_runtime(cfg.runtime) and inproc.current():
            return inproc.fork(argv, stdin, stdout, stderr)
        return proc.spawn(argv, stdin, stdout, stderr)

    def runtime(self, *args: str, stdin: int = -1, stdout: int = -1) -> tuple[int, str]:
        """Run the runtime to completion; (exit code, its stderr)."""
        err_r, err_w = os.pipe()
        try:
            pid = self.spawn_runtime(
                args,
                self.devnull if stdin < 0 else stdin,
                self.devnull if stdout < 0 else stdout,
                err_w,
            )
        finally:
            os.close(err_w)
        chunks = []
        while chunk := os.read(err_r, 65536):
            chunks.append(chunk)
        os.close(err_r)
        _, status = os.waitpid(pid, 0)
        return proc.exit_code(status)[0], b"".join(chunks).decode("utf-8", "replace")

    def start_container(self, start: bool = True) -> None:
        """RUNTIME create (stdio pipes, or a pty over the console socket), then RUNTIME start.

        The monitor makes the container's pipes (or the console socket) and
        leaves the rest to a short-lived child (`_create_in_helper`): running
        the runtime, reading its pid file, finding the OOM counter and writing
        the state file. Everything that child touches stays out of the
        monitor's own memory, which is paid for once per container; the init
        is still the monitor's child (a subreaper: the helper is not one).
        """
        cfg = self.cfg
        console: _socket.socket | None = None
        console_path = cfg.state_dir.rstrip("/") + "/console.sock"
        ends: list[int] = []  # the container's ends of the pipes: the helper's, not ours
        stdin_w = -1
        try:
            if cfg.terminal:
                console = proc.unix_listener(console_path, STREAM)
                err_r, err_w = os.pipe()
                fds = (self.devnull, self.devnull, err_w)
                ends = [err_w]
                stream_fds = {err_r: "stderr"}
            else:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                stdin_fd = self.devnull
                if cfg.stdin:
                    stdin_fd, stdin_w = os.pipe()
                    ends.append(stdin_fd)
                fds = (stdin_fd, out_w, err_w)
                ends += [out_w, err_w]
                stream_fds = {out_r: "stdout", err_r: "stderr"}
            for fd in stream_fds:
                os.set_blocking(fd, False)
            # a pty's container may only start once we hold the master: we start it then
            report = self._create_in_helper(fds, stream_fds, start and console is None, console)
            for fd in ends:
                os.close(fd)
            ends = []
            if "error" in report:
                for fd in stream_fds:
                    os.close(fd)
                if stdin_w >= 0:
                    os.close(stdin_w)
                raise RuntimeFailure(str(report["error"]))
            self.stdin_fd = stdin_w
            if console is not None:
                conn = proc.accept(console, STREAM)
                master = proc.recv_fd(conn) if conn is not None else None
                if conn is not None:
                    conn.close()
                for fd in stream_fds:  # only the runtime's own stderr in pty mode
                    os.close(fd)
                if master is None:
                    self.runtime("delete", "--force", cfg.id)
                    raise RuntimeFailure("runtime create sent no pty over the console socket")
                os.set_blocking(master, False)
                self.pty_fd = master
                if cfg.stdin:
                    self.stdin_fd = master
                stream_fds = {master: "stdout"}
            self.out_fds = stream_fds
            self.init_pid = report["pid"]
            self.oom_file = report["oom_file"]
            self.oom_base = report["oom_base"]
        finally:
            for fd in ends:
                os.close(fd)
            if console is not None:
                console.close()
                try:
                    os.unlink(console_path)
                except FileNotFoundError:
                    pass
        self.status = "created"
        self.children[self.init_pid] = self.on_init_exit
        for fd in self.out_fds:
            self.watch(fd, POLLIN, self._output_handler(fd))
        if self.stdin_fd >= 0 and self.stdin_fd != self.pty_fd:
            os.set_blocking(self.stdin_fd, False)
        if "started_at" in report:
            self.running(report["started_at"], write=False)
        elif start:
            self.start_created()

    def _create_in_helper(
        self,
        fds: tuple[int, int, int],
        stream_fds: dict[int, str],
        start: bool,
        console: _socket.socket | None,
    ) -> dict[str, Any]:
        """Fork the helper that creates (and, with `start`, starts) the container; its report.

        The report is `{"pid", "oom_file", "oom_base"[, "started_at"]}` or
        `{"error": ONE LINE}`, in marshal (C only: no parser code runs in the
        monitor); a failed create or start leaves nothing behind.
        """
        work = self._helper_work  # first: the zygote's warm-up ends a call here (self=None)
        report_r, report_w = os.pipe()
        helper = os.fork()
        if helper == 0:
            _signal.set_wakeup_fd(-1)  # our children's SIGCHLD is not the monitor's business
            os.close(report_r)
            if console is not None:
                console.close()  # the listener is the monitor's: the runtime connects to it
            try:
                doc = work(fds, stream_fds, start)
            except BaseException as exc:  # the monitor reports it as one line
                doc = {"error": str(exc) or type(exc).__name__}
            try:
                os.write(report_w, marshal.dumps(doc))
                os.close(report_w)  # the end of the report: our exit may take a while
            finally:
                os._exit(0)
        os.close(report_w)
        chunks = []
        while chunk := os.read(report_r, 65536):
            chunks.append(chunk)
        os.close(report_r)
        # not waited for here: its exit would delay the start; on_sigchld reaps it
        try:
            report: dict[str, Any] = marshal.loads(b"".join(chunks))
        except (EOFError, ValueError, TypeError):
            report = {"error": "the monitor's helper died before it reported"}
        return report

    def _helper_work(
        self, fds: tuple[int, int, int], stream_fds: dict[int, str], start: bool
    ) -> dict[str, Any]:
        """In the helper: the runtime's create (and start), the files; the report."""
        cfg = self.cfg
        if self.restart_count == 0:
            write_atomic(cfg.monitor_pid_file, f"{self.pid}\n".encode())
        try:
            os.unlink(cfg.pid_file)
        except FileNotFoundError:
            pass
        create = ["create", "--bundle", cfg.bundle, "--pid-file", cfg.pid_file]
        if cfg.terminal:
            create += ["--console-socket", cfg.state_dir.rstrip("/") + "/console.sock"]
        pid = self.spawn_runtime((*create, cfg.id), *fds)
        for fd in fds:
            if fd != self.devnull:
                os.close(fd)
        _, status = os.waitpid(pid, 0)
        code = proc.exit_code(status)[0]
        if code != 0:
            err_text = b"".join(proc.read_nonblocking(fd)[0] for fd in stream_fds)
            self.runtime("delete", "--force", cfg.id)  # whatever it left half-made
            return {"error": _error_line(err_text, f"runtime create exited with {code}")}
        self.init_pid = int(read_file(cfg.pid_file).strip() or b"0")
        oom_file = oom_counter_file(self.init_pid)
        report: dict[str, Any] = {
            "pid": self.init_pid,
            "oom_file": oom_file,
            "oom_base": read_oom_kills(oom_file),
        }
        if start:
            code, err = self.runtime("start", cfg.id)
            if code != 0:
                self.runtime("delete", "--force", cfg.id)
                return {"error": _error_line(err.encode(), f"runtime start exited with {code}")}
            report["started_at"] = rfc3339nano()
            self.running(report["started_at"])
        else:
            self.status = "created"
            self.write_state()
        return report

    def start_created(self) -> None:
        """RUNTIME start: the init execs the container's process."""
        code, err = self.runtime("start", self.cfg.id)
        if code != 0:
            self.children.pop(self.init_pid, None)
            self.runtime("delete", "--force", self.cfg.id)
            self.close_container_fds()
            raise RuntimeFailure(_error_line(err.encode(), f"runtime start exited with {code}"))
        self.running(rfc3339nano())

    def running(self, started_at: str, write: bool = True) -> None:
        """The container runs: record it (`write`: the files too, else the helper wrote them)."""
        self.started_at = started_at
        self.started_mono = _now()
        self.status = "running"
        if self.cfg.healthcheck is not None:
            self.health = HealthState(self.cfg.healthcheck)
            if self.health_timer is None or not self.health_timer.active:
                self.health_timer = self.after(self.cfg.healthcheck.interval, self.start_probe)
        if write:
            self.write_state()
            self.write_health()

    def close_container_fds(self) -> None:
        for fd in self.out_fds:
            self.unwatch(fd)
            os.close(fd)
        if self.stdin_fd >= 0 and self.stdin_fd not in self.out_fds:
            self.unwatch(self.stdin_fd)
            os.close(self.stdin_fd)
        self.out_fds = {}
        self.stdin_fd = -1
        self.pty_fd = -1
        self.stdin_buf.clear()

    # -- output --------------------------------------------------------------

    def _output_handler(self, fd: int) -> Callable[[int], None]:
        def handler(_events: int) -> None:
            data, eof = proc.read_nonblocking(fd)
            self.emit(self.out_fds.get(fd, "stdout"), data)
            if eof:
                self.unwatch(fd)

        return handler

    def emit(self, stream: str, data: bytes) -> None:
        if not data:
            return
        if self.log is not None:
            self.log.write(stream, data)
        kind = protocol.STDOUT if stream == "stdout" else protocol.STDERR
        if self.cfg.attach_replay:
            self.replay += data
            del self.replay[: -self.cfg.attach_replay]
        step = protocol.MAX_PACKET - 1
        for i in range(0, len(data), step):
            packet = bytes((kind,)) + data[i : i + step]
            for client in list(self.clients.values()):
                self.send_client(client, packet)

    def drain_output(self) -> None:
        for fd in list(self.out_fds):
            if fd in self.handlers:
                data = proc.read_nonblocking(fd)[0]
                self.emit(self.out_fds[fd], data)

    # -- attach --------------------------------------------------------------

    def on_attach_accept(self, _events: int) -> None:
        while (sock := proc.accept(self.attach_sock, SEQPACKET)) is not None:
            client = AttachClient(sock)
            self.clients[sock.fileno()] = client
            self.watch(sock.fileno(), POLLIN, self._bind_client(client))
            step = protocol.MAX_PACKET - 1
            for i in range(0, len(self.replay), step):
                self.send_client(client, bytes((protocol.STDOUT,)) + self.replay[i : i + step])

    def _bind_client(self, client: AttachClient) -> Callable[[int], None]:
        def handler(events: int) -> None:
            self.on_client(client, events)

        return handler

    def send_client(self, client: AttachClient, packet: bytes) -> None:
        if client.queue:
            client.queue.append(packet)
            client.queued += len(packet)
            if client.queued > CLIENT_QUEUE_MAX:
                self.drop_client(client)  # too slow a reader: the container must not wait
            return
        try:
            client.sock.send(packet)
        except BlockingIOError:
            client.queue.append(packet)
            client.queued += len(packet)
            self.poller.modify(client.sock.fileno(), POLLIN | POLLOUT)
        except OSError:
            self.drop_client(client)

    def on_client(self, client: AttachClient, events: int) -> None:
        if events & POLLOUT:
            while client.queue:
                try:
                    client.sock.send(client.queue[0])
                except BlockingIOError:
                    break
                except OSError:
                    self.drop_client(client)
                    return
                client.queued -= len(client.queue.pop(0))
            if not client.queue:
                self.poller.modify(client.sock.fileno(), POLLIN)
        if not events & (POLLIN | select.POLLHUP | select.POLLERR):
            return
        try:
            packet = client.sock.recv(protocol.MAX_PACKET)
        except BlockingIOError:
            return
        except OSError:
            packet = b""
        if not packet:
            self.drop_client(client)
            return
        kind, payload = packet[0], packet[1:]
        if kind == protocol.STDIN:
            client.sent_input = True
            self.client_input(client, payload)
        elif kind == protocol.RESIZE:
            rows, _, cols = payload.partition(b" ")
            if rows.isdigit() and cols.isdigit():
                self.resize(int(rows), int(cols))
        elif kind == protocol.CLOSE_STDIN:
            self.close_stdin()

    def client_input(self, client: AttachClient, data: bytes) -> None:
        """Forward input, holding back ctrl-p until we know it does not start ctrl-p ctrl-q."""
        first, second = protocol.DETACH_KEYS
        if not client.ctrl_p and first not in data:
            self.write_stdin(data)
            return
        out = bytearray()
        for byte in data:
            if client.ctrl_p:
                client.ctrl_p = False
                if byte == second:
                    self.write_stdin(bytes(out))
                    self.send_client(client, bytes((protocol.DETACHED,)))
                    self.drop_client(client, flush=True)
                    return
                out.append(first)
                if byte == first:
                    client.ctrl_p = True
                    continue
                out.append(byte)
            elif byte == first:
                client.ctrl_p = True
            else:
                out.append(byte)
        self.write_stdin(bytes(out))

    def drop_client(self, client: AttachClient, flush: bool = False) -> None:
        fd = client.sock.fileno()
        if self.clients.pop(fd, None) is None:
            return
        self.unwatch(fd)
        if self.cfg.stdin_once and client.sent_input:
            self.close_stdin()  # its input is over, even if it vanished without saying so
        if flush and client.queue:
            client.sock.setblocking(True)
            client.sock.settimeout(1.0)
            try:
                for packet in client.queue:
                    client.sock.send(packet)
            except OSError:
                pass
        client.sock.close()

    def write_stdin(self, data: bytes) -> None:
        if not data or self.stdin_fd < 0:
            return
        self.stdin_buf += data
        self.flush_stdin(POLLOUT)

    def flush_stdin(self, _events: int) -> None:
        fd = self.stdin_fd
        if fd < 0:
            return
        while self.stdin_buf:
            try:
                n = os.write(fd, self.stdin_buf)
            except BlockingIOError:
                break
            except OSError:  # the container closed its stdin
                self.stdin_buf.clear()
                break
            del self.stdin_buf[:n]
        if fd == self.pty_fd:  # the pty master is watched for output already
            if self.stdin_buf:
                self.poller.modify(fd, POLLIN | POLLOUT)
                self.handlers[fd] = self._pty_handler(fd)
            return
        if self.stdin_buf and fd not in self.handlers:
            self.watch(fd, POLLOUT, self.flush_stdin)
        elif not self.stdin_buf:
            self.unwatch(fd)
            if self.stdin_close_pending:
                self.close_stdin()

    def _pty_handler(self, fd: int) -> Callable[[int], None]:
        output = self._output_handler(fd)

        def handler(events: int) -> None:
            if events & POLLOUT:
                self.flush_stdin(events)
                if not self.stdin_buf and fd in self.handlers:
                    self.poller.modify(fd, POLLIN)
                    self.handlers[fd] = output
            if events & ~POLLOUT:
                output(events)

        return handler

    def close_stdin(self) -> None:
        """EOF on the container's stdin pipe once pending input is written (not for a pty)."""
        if self.stdin_fd < 0 or self.stdin_fd == self.pty_fd:
            return
        if self.stdin_buf:
            self.stdin_close_pending = True
            return
        self.unwatch(self.stdin_fd)
        os.close(self.stdin_fd)
        self.stdin_fd = -1
        self.stdin_close_pending = False

    def resize(self, rows: int, cols: int) -> None:
        if self.pty_fd < 0:
            return
        import fcntl
        import termios

        winsize = rows.to_bytes(2, sys.byteorder) + cols.to_bytes(2, sys.byteorder) + bytes(4)
        fcntl.ioctl(self.pty_fd, termios.TIOCSWINSZ, winsize)

    # -- control socket ------------------------------------------------------

    def on_control_accept(self, _events: int) -> None:
        while (sock := proc.accept(self.control_sock, STREAM)) is not None:
            fd = sock.fileno()
            self.controls[fd] = (sock, bytearray())
            self.watch(fd, POLLIN, self._bind_control(fd))

    def _bind_control(self, fd: int) -> Callable[[int], None]:
        def handler(_events: int) -> None:
            self.on_control(fd)

        return handler

    def on_control(self, fd: int) -> None:
        sock, buf = self.controls[fd]
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buf += chunk
        if chunk and b"\n" not in buf and len(buf) < 65536:
            return
        self.unwatch(fd)
        del self.controls[fd]
        try:
            reply = self.control(jsonlite.loads(bytes(buf).split(b"\n")[0], "control request"))
        except (PortsideError, ValueError, TypeError, OSError) as exc:
            reply = {"error": str(exc)}
        try:
            sock.setblocking(True)
            sock.settimeout(1.0)
            sock.sendall((jsonlite.dumps(reply) + "\n").encode())
        except OSError:
            pass
        sock.close()

    def control(self, req: Any) -> dict[str, Any]:
        op = req.get("op") if isinstance(req, dict) else None
        if op == "status":
            return self.state()
        if op == "resize":
            self.resize(int(req["rows"]), int(req["cols"]))
            return {"ok": True}
        if op == "reopen_log":
            if self.log is not None:
                self.log.reopen()
            return {"ok": True}
        if op == "modules":  # what the resident monitor has loaded (tests check it stays small)
            forked_with = sorted(ZYGOTE_MODULES) if ZYGOTE_MODULES is not None else None
            return {"modules": sorted(sys.modules), "zygote_modules": forked_with}
        if op == "start":
            if self.status != "created":
                return {"error": f"container is {self.status}, not created"}
            try:
                self.start_created()
            except (PortsideError, OSError) as exc:
                self.last_exit = {"exit_code": -1, "error": str(exc), "finished_at": rfc3339nano()}
                self.finish()
                return {"error": str(exc)}
            return {"ok": True, "pid": self.init_pid}
        if op == "stop":
            return self.stop(req.get("signal", 15), float(req.get("timeout", 10)))
        return {"error": f"unknown control op {op!r}"}

    def stop(self, signal: int | str, timeout: float) -> dict[str, Any]:
        """Signal the container, SIGKILL after `timeout`; no restart follows a stop."""
        self.stopped = True
        if isinstance(signal, str):
            name = signal.upper().removeprefix("SIG")
            signal = SIGNALS.get(name, 0) if not name.isdigit() else int(name)
        if self.status == "restarting":
            if self.restart_timer is not None:
                self.restart_timer.active = False
            self.finish()
            return {"ok": True}
        if self.status not in ("running", "created"):
            return {"ok": True}
        code, err = self.runtime("kill", self.cfg.id, str(signal))
        if code != 0 and pid_alive(self.init_pid):  # else it exited as we asked: no error
            return {"error": _error_line(err.encode(), f"runtime kill exited with {code}")}
        if self.stop_timer is None:
            self.stop_timer = self.after(timeout, self.kill_now)
        return {"ok": True}

    def kill_now(self) -> None:
        if self.status in ("running", "created"):
            self.runtime("kill", self.cfg.id, "9")

    # -- exit, restart -------------------------------------------------------

    def on_init_exit(self, status: int) -> None:
        code, signal = proc.exit_code(status)
        finished_mono = _now()
        self.drain_output()
        oom = bool(self.oom_file) and read_oom_kills(self.oom_file) > self.oom_base
        self.last_exit = {
            "exit_code": code,
            "signal": signal,
            "oom_killed": oom,
            "started_at": self.started_at,
            "finished_at": rfc3339nano(),
        }
        self.stop_health()
        if self.stop_timer is not None:
            self.stop_timer.active = False
            self.stop_timer = None
        self.close_container_fds()
        ret, _ = self.runtime("delete", self.cfg.id)
        if ret != 0:
            self.runtime("delete", "--force", self.cfg.id)
        self.init_pid = 0
        never_started = not self.started_at
        if never_started or not self.cfg.restart.should_restart(
            code, self.restart_count, self.stopped
        ):
            self.finish()
            return
        if finished_mono - self.started_mono >= self.cfg.restart.reset_after:
            self.backoff_attempt = 0
        attempt = self.backoff_attempt
        self.backoff_attempt += 1
        self.status = "restarting"
        self.write_state()
        self.restart_timer = self.after(self.cfg.restart.delay(attempt), self.restart)

    def restart(self) -> None:
        if self.stopped:
            self.finish()
            return
        self.restart_count += 1
        try:
            self.start_container()
        except (PortsideError, OSError) as exc:
            self.last_exit["error"] = str(exc)
            self.finish()

    def finish(self) -> None:
        self.status = "exited"
        doc = {"id": self.cfg.id, "restart_count": self.restart_count, **self.last_exit}
        self.write_state()  # first: whoever sees the exit file finds the state final too
        write_json(self.cfg.exit_file, doc)
        packet = bytes((protocol.EXIT,)) + jsonlite.dumps(doc).encode()
        for client in list(self.clients.values()):
            self.send_client(client, packet)
            self.drop_client(client, flush=True)
        self.done = True
        self.run_exit_command(doc)

    def run_exit_command(self, doc: dict[str, Any]) -> None:
        """Start the engine's clean-up (e.g. for `run -d --rm`) and leave it running on its own.

        It gets its own session and is not waited for: the monitor exits right
        after, and the command is reparented to init.
        """
        argv = self.cfg.exit_command
        if not argv:
            return
        env = dict(os.environ)
        env["PORTSIDE_CONTAINER_ID"] = self.cfg.id
        env["PORTSIDE_EXIT_CODE"] = str(doc.get("exit_code", -1))
        try:
            proc.spawn(argv, self.devnull, self.devnull, self.devnull, env, setsid=True)
        except OSError as exc:
            sys.stderr.write(f"exit command {argv[0]}: {exc}\n")

    # -- healthcheck ---------------------------------------------------------

    def start_probe(self) -> None:
        cfg = self.cfg.healthcheck
        if cfg is None or self.status != "running":
            return
        pid_file = self.cfg.state_dir.rstrip("/") + "/health.pid"
        out_r, out_w = os.pipe()
        try:
            pid = self.spawn_runtime(
                ("exec", "--pid-file", pid_file, self.cfg.id, *cfg.argv),
                self.devnull,
                out_w,
                out_w,
            )
        finally:
            os.close(out_w)
        os.set_blocking(out_r, False)
        probe: dict[str, Any] = {
            "pid": pid,
            "fd": out_r,
            "output": bytearray(),
            "start_ns": time.time_ns(),
            "pid_file": pid_file,
            "timed_out": False,
        }
        self.probe = probe

        def on_output(_events: int) -> None:
            data, eof = proc.read_nonblocking(out_r)
            probe["output"] += data
            del probe["output"][: -2 * 4096]
            if eof:
                self.unwatch(out_r)

        self.watch(out_r, POLLIN, on_output)
        probe["timer"] = self.after(cfg.timeout, lambda: self.probe_timeout(probe))
        self.children[pid] = lambda status: self.probe_done(probe, status)

    def probe_timeout(self, probe: dict[str, Any]) -> None:
        probe["timed_out"] = True
        try:
            os.kill(int(read_file(probe["pid_file"]).strip()), 9)
        except (OSError, ValueError):
            pass
        try:
            os.kill(probe["pid"], 9)
        except OSError:
            pass

    def probe_done(self, probe: dict[str, Any], status: int) -> None:
        probe["timer"].active = False
        fd = probe["fd"]
        if fd in self.handlers:
            probe["output"] += proc.read_nonblocking(fd)[0]
            self.unwatch(fd)
        os.close(fd)
        if self.probe is not probe or self.health is None or self.cfg.healthcheck is None:
            return
        self.probe = None
        code = -1 if probe["timed_out"] else proc.exit_code(status)[0]
        in_start = _now() - self.started_mono < self.cfg.healthcheck.start_period
        self.health.record(
            code, bytes(probe["output"]), probe["start_ns"], time.time_ns(), in_start
        )
        self.write_health()
        if self.status == "running":
            self.health_timer = self.after(self.cfg.healthcheck.interval, self.start_probe)

    def stop_health(self) -> None:
        if self.health_timer is not None:
            self.health_timer.active = False
        if self.probe is not None:
            self.probe_timeout(self.probe)
            self.probe = None

    def write_health(self) -> None:
        if self.health is not None:
            write_json(self.cfg.health_file, self.health.to_json())

    # -- state ---------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.cfg.id,
            "status": self.status,
            "monitor_pid": self.pid,
            "pid": self.init_pid,
            "restart_count": self.restart_count,
            "started_at": self.started_at,
            "last_exit": self.last_exit or None,
        }
        if self.health is not None:
            doc["health"] = self.health.status
        return doc

    def write_state(self) -> None:
        write_json(self.cfg.state_file, self.state())

    # -- life cycle ----------------------------------------------------------

    def setup(self) -> None:
        cfg = self.cfg
        self.pid = os.getpid()
        proc.set_subreaper()
        self.wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.signal(_signal.SIGCHLD, _wake_only)
        _signal.set_wakeup_fd(wakeup_w, warn_on_full_buffer=False)
        self.watch(self.wakeup_r, POLLIN, self.on_sigchld)
        self.log = open_writer(cfg.log_driver, cfg.log_path, cfg.log_max_size, cfg.log_max_file)
        self.attach_sock = proc.unix_listener(cfg.attach_socket, SEQPACKET)
        self.watch(self.attach_sock.fileno(), POLLIN, self.on_attach_accept)
        self.control_sock = proc.unix_listener(cfg.control_socket, STREAM)
        self.watch(self.control_sock.fileno(), POLLIN, self.on_control_accept)

    def cleanup(self) -> None:
        for path in (self.cfg.attach_socket, self.cfg.control_socket):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if self.log is not None:
            self.log.close()


def _wake_only(_signum: int, _frame: object) -> None:
    """SIGCHLD: the wakeup fd does the work (a module function: no closure per monitor)."""


def _error_line(text: bytes, fallback: str) -> str:
    """The runtime's last error line, with runc's logrus `msg="..."` unwrapped."""
    lines = [ln.strip() for ln in text.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return fallback
    line = lines[-1]
    marker = 'msg="'
    if marker in line:
        msg = line[line.index(marker) + len(marker) :]
        end = msg.rfind('"')
        line = (msg[:end] if end >= 0 else msg).replace('\\"', '"')
    return line


# -- OOM accounting ------------------------------------------------------------


def oom_counter_file(pid: int) -> str:
    """The memory cgroup file that counts OOM kills for pid's cgroup ("" if none).

    cgroup v1 memory controller: memory.oom_control's `oom_kill`; cgroup v2:
    memory.events' `oom_kill`. Found while the process lives (its
    /proc/PID/cgroup disappears with it) and read after it has exited, before
    the runtime deletes the cgroup.
    """
    try:
        lines = read_file(f"/proc/{pid}/cgroup").decode().splitlines()
    except OSError:
        return ""
    v1 = v2 = ""
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            v1 = path
        elif controllers == "":
            v2 = path
    mounts = _cgroup_mounts()
    if v1 and "memory" in mounts:
        return mounts["memory"] + v1 + "/memory.oom_control"
    if v2 and "" in mounts and os.path.exists(mounts[""] + v2 + "/memory.events"):
        return mounts[""] + v2 + "/memory.events"
    return ""


def _cgroup_mounts() -> dict[str, str]:
    """controller -> mount point ("" for the cgroup2 hierarchy), from our mountinfo."""
    found: dict[str, str] = {}
    for line in read_file("/proc/self/mountinfo").decode().splitlines():
        left, _, right = line.partition(" - ")
        fields = right.split()
        if len(fields) < 3:
            continue
        mount_point = left.split()[4]
        if fields[0] == "cgroup2":
            found.setdefault("", mount_point)
        elif fields[0] == "cgroup":
            for opt in fields[2].split(","):
                found.setdefault(opt, mount_point)
    return found


def read_oom_kills(path: str) -> int:
    if not path:
        return 0
    try:
        text = read_file(path).decode()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


# -- entry ---------------------------------------------------------------------


def _report(fd: int | None, doc: dict[str, Any] | bytes) -> None:
    """The handshake line on the engine's sync pipe, then the pipe closed."""
    if fd is None:
        return
    try:
        os.write(fd, doc if isinstance(doc, bytes) else (jsonlite.dumps(doc) + "\n").encode())
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass


def _daemonize(cfg: MonitorConfig, forked: bool = False, detached: bool = False) -> None:
    """fork, setsid, fork: the caller's process exits at once and nothing ties us to it.

    `forked`: we are already a fresh child (of the zygote) that nobody waits on
    but the zygote, so the first fork is not needed; `detached`: the forks and
    setsid are done already (the zygote's child did them), only the fds are left.
    """
    if not forked and not detached:
        pid = os.fork()
        if pid:
            os.waitpid(pid, 0)
            os._exit(0)
    if not detached:
        os.setsid()
        if os.fork():
            os._exit(0)
    os.chdir("/")
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    if cfg.monitor_log:
        err = os.open(cfg.monitor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.dup2(err, 2)
        os.close(err)
    else:
        os.dup2(null, 2)
    os.close(null)


def main(argv: list[str] | None = None) -> None:
    """`python ... CONFIG`: the process the engine starts; it returns as soon as we detach."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m portside.monitor CONFIG.json\n")
        raise SystemExit(2)
    launch(args[0])


def read_config(path: str) -> MonitorConfig:
    """The validated config at `path`; raises PortsideError (one line) or OSError."""
    return MonitorConfig(
        jsonlite.loads(read_file(path), f"monitor config {path}"), path.rpartition("/")[0] or "/"
    )


def config_error(path: str, exc: Exception) -> str:
    return str(exc) if isinstance(exc, PortsideError) else f"monitor config {path}: {exc}"


def launch(
    path: str,
    sync_fd: int | None = None,
    forked: bool = False,
    cfg: MonitorConfig | None = None,
    detached: bool = False,
) -> None:
    """Read the config, detach, start the container, report on the sync fd, serve; never returns.

    `sync_fd` overrides the config's (the zygote received the engine's pipe
    under another number). `cfg`: the zygote read and validated it already,
    before it forked us, so the parse's garbage stays in the zygote's memory
    instead of being copied into each monitor's.
    """
    try:
        if cfg is None:
            doc = jsonlite.loads(read_file(path), f"monitor config {path}")
            if sync_fd is None and isinstance(doc, dict) and type(doc.get("sync_fd")) is int:
                sync_fd = doc["sync_fd"]
            if sync_fd is not None:
                os.set_inheritable(sync_fd, False)  # the container must not hold the engine's pipe
            cfg = MonitorConfig(doc, path.rpartition("/")[0] or "/")
        elif sync_fd is not None:
            os.set_inheritable(sync_fd, False)
    except (PortsideError, OSError) as exc:
        message = config_error(path, exc)
        sys.stderr.write(message + "\n")
        _report(sync_fd, {"error": message})
        if forked:
            os._exit(1)
        raise SystemExit(1) from None
    if not detached or cfg.monitor_log:  # else the zygote did it: cwd /, stdio /dev/null
        _daemonize(cfg, forked, detached)
    monitor = Monitor(cfg)
    try:
        monitor.setup()
        monitor.start_container(start=not cfg.defer_start)
    except (PortsideError, OSError) as exc:
        monitor.last_exit = {"exit_code": -1, "error": str(exc), "finished_at": rfc3339nano()}
        monitor.status = "exited"
        try:
            monitor.write_state()
        except OSError:
            pass
        monitor.cleanup()
        _report(sync_fd, {"error": str(exc)})
        os._exit(1)
    # formatted by hand: the encoder would be one more thing each monitor touches for good
    _report(sync_fd, b'{"pid":%d,"monitor_pid":%d}\n' % (monitor.init_pid, monitor.pid))
    try:
        monitor.run_loop()
    finally:
        monitor.cleanup()
    os._exit(0)

"""The engine's side of the monitor: start one, find it again, attach, resize, wait.

This module runs in the engine (or CLI) process, never in the monitor, so it
may use the ordinary stdlib. The monitor it starts is `python -I -S` with only
portside's own directory on sys.path: no site-packages, no user site, nothing
a user's environment could slip into every container's parent.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import portside
from portside.errors import NotFound, RuntimeFailure
from portside.monitor import protocol
from portside.monitor.config import MonitorConfig

_PACKAGE_PARENT = str(Path(portside.__file__).resolve().parent.parent)
_BOOT = (
    f"import sys; sys.path.insert(0, {_PACKAGE_PARENT!r}); "
    "from portside.monitor.main import main; main()"
)
_ZYGOTE_BOOT = (
    f"import sys; sys.path.insert(0, {_PACKAGE_PARENT!r}); "
    "from portside.monitor.zygote import run; run()"
)
ZYGOTE_IDLE = 600.0


def _code_tag(python: str) -> str:
    """Names the zygote after the interpreter and the monitor's code, so an upgrade starts anew."""
    import hashlib

    h = hashlib.sha256(python.encode())
    root = Path(_PACKAGE_PARENT) / "portside"
    for f in sorted([root / "errors.py", root / "__init__.py", *(root / "monitor").glob("*.py")]):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class ExitStatus:
    """What the monitor recorded when it finished (the exit file)."""

    exit_code: int
    signal: int = 0
    oom_killed: bool = False
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    error: str = ""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ExitStatus:
        return cls(
            exit_code=int(doc.get("exit_code", -1)),
            signal=int(doc.get("signal") or 0),
            oom_killed=bool(doc.get("oom_killed", False)),
            started_at=str(doc.get("started_at") or ""),
            finished_at=str(doc.get("finished_at") or ""),
            restart_count=int(doc.get("restart_count", 0)),
            error=str(doc.get("error") or ""),
        )


def monitor_argv(config_path: str | os.PathLike[str], python: str | None = None) -> list[str]:
    """The command that starts a monitor (the engine may run it its own way)."""
    return [python or sys.executable, "-I", "-S", "-c", _BOOT, os.fspath(config_path)]


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def spawn(
    config: dict[str, Any],
    config_path: str | os.PathLike[str] | None = None,
    python: str | None = None,
    timeout: float = 120.0,
    zygote_dir: str | os.PathLike[str] | None = None,
) -> MonitorHandle:
    """Write the config, start the monitor detached and wait for its handshake.

    Returns once the container's init runs (the monitor reported its PID), or
    raises RuntimeFailure with the monitor's (usually the runtime's) one-line
    error. `config_path` defaults to STATE_DIR/monitor.json. With `zygote_dir`
    (the engine's run root) the monitor is forked from a shared warm zygote
    kept there (see zygote.py), started on first use; without it, or if the
    zygote cannot be used, the monitor is a fresh interpreter.
    """
    doc = dict(config)
    doc.setdefault("version", 1)
    runtime = doc.get("runtime")
    if isinstance(runtime, str) and runtime and "/" not in runtime:
        found = shutil.which(runtime)
        if found is None:
            raise RuntimeFailure(f"OCI runtime {runtime!r}: not found in PATH")
        doc["runtime"] = found
    state_dir = doc.get("state_dir")
    if config_path is None:
        if not state_dir:
            raise RuntimeFailure("monitor config: state_dir or a config path is needed")
        config_path = Path(state_dir) / "monitor.json"
    path = Path(config_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    try:
        doc["sync_fd"] = write_end
        cfg = MonitorConfig(doc, str(path.parent))  # one clear line before anything starts
        for directory in {cfg.state_dir, cfg.exit_dir, os.path.dirname(cfg.log_path)}:
            os.makedirs(directory, exist_ok=True)
        _write_json(path, doc)
        starter = None
        if zygote_dir is None or not _via_zygote(
            Path(zygote_dir), path, write_end, python or sys.executable, _preload(cfg)
        ):
            starter = subprocess.Popen(
                monitor_argv(path, python),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(write_end,),
            )
    finally:
        os.close(write_end)
    stderr = b""
    try:
        reply = _read_handshake(read_end, timeout)
    finally:
        os.close(read_end)
        if starter is not None:
            _, stderr = starter.communicate()
    if reply is None:
        detail = stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeFailure(
            f"monitor for {cfg.id} exited without a handshake"
            + (f": {detail[-1]}" if detail else "")
        )
    if "error" in reply:
        raise RuntimeFailure(f"container {cfg.id}: {reply['error']}")
    return MonitorHandle(cfg, str(path), int(reply["monitor_pid"]), int(reply["pid"]))


def zygote_socket(directory: str | os.PathLike[str], python: str | None = None) -> Path:
    return Path(directory) / f"monitor-zygote-{_code_tag(python or sys.executable)}.sock"


def _preload(cfg: MonitorConfig) -> bool:
    """Whether a zygote started for this container should load portside-runtime's modules.

    Started so at once, it does not hand itself over to one that does after
    forking this first monitor, which would then be the only process left
    holding the first zygote's image (~3 MB).
    """
    from portside.monitor import inproc

    return cfg.runtime_inprocess and inproc.is_own_runtime(cfg.runtime)


def _via_zygote(
    directory: Path, config_path: Path, sync_fd: int, python: str, preload: bool = False
) -> bool:
    """Ask the zygote (starting it if needed) to fork the monitor; False if it cannot."""
    path = zygote_socket(directory, python)
    if len(os.fsencode(path)) > 107:
        return False
    request = json.dumps({"config": str(config_path)}).encode()
    if _send_to_zygote(path, request, sync_fd):
        return True
    # one starter at a time, so that racing spawns do not each start a zygote
    import fcntl

    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _send_to_zygote(path, request, sync_fd):
            return True
        return _start_zygote(path, python, preload) and _send_to_zygote(path, request, sync_fd)


def _send_to_zygote(path: Path, request: bytes, sync_fd: int) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.connect(str(path))
            socket.send_fds(sock, [request], [sync_fd])
    except OSError:
        return False
    return True


def _start_zygote(path: Path, python: str, preload: bool = False) -> bool:
    from portside.monitor import inproc

    path.parent.mkdir(parents=True, exist_ok=True)
    ready_r, ready_w = os.pipe()
    env = dict(os.environ)
    env.pop(inproc.PRELOAD_ENV, None)
    if preload:
        env[inproc.PRELOAD_ENV] = "1"
    try:
        starter = subprocess.Popen(
            [python, "-I", "-S", "-c", _ZYGOTE_BOOT, str(path), str(ready_w), str(ZYGOTE_IDLE)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(ready_w,),
            env=env,
        )
    finally:
        os.close(ready_w)
    try:
        ready, _, _ = select.select([ready_r], [], [], 30.0)
        ok = bool(ready) and os.read(ready_r, 16).startswith(b"ready")
    finally:
        os.close(ready_r)
        starter.wait()
    return ok


def _read_handshake(fd: int, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeFailure(f"monitor did not answer within {timeout:g} s")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    if not data.strip():
        return None
    reply = json.loads(data.split(b"\n")[0])
    return reply if isinstance(reply, dict) else None


class MonitorHandle:
    """A running (or finished) monitor, found by its config; any process may hold one."""

    def __init__(self, config: MonitorConfig, config_path: str, pid: int, init_pid: int) -> None:
        self.config = config
        self.config_path = config_path
        self.pid = pid
        self.init_pid = init_pid

    @property
    def id(self) -> str:
        return self.config.id

    @classmethod
    def load(cls, config_path: str | os.PathLike[str]) -> MonitorHandle:
        """Find the monitor of an existing container again, e.g. from a new CLI process."""
        path = Path(config_path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"monitor config {path}: no such file") from None
        cfg = MonitorConfig(doc, str(path.parent))
        state = _read_json(cfg.state_file) or {}
        return cls(cfg, str(path), int(state.get("monitor_pid", 0)), int(state.get("pid", 0)))

    def alive(self) -> bool:
        """Whether the monitor process still exists (and is not a zombie)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] != "Z"

    def exit_status(self) -> ExitStatus | None:
        doc = _read_json(self.config.exit_file)
        return None if doc is None else ExitStatus.from_json(doc)

    def state(self) -> dict[str, Any] | None:
        return _read_json(self.config.state_file)

    def health(self) -> dict[str, Any] | None:
        return _read_json(self.config.health_file)

    def wait(self, timeout: float | None = None, interval: float = 0.02) -> ExitStatus:
        """Block until the exit file appears; fail if the monitor dies without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.exit_status()
            if status is not None:
                return status
            if not self.alive():
                status = self.exit_status()
                if status is not None:
                    return status
                raise RuntimeFailure(f"monitor of {self.id} died without recording an exit")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"container {self.id} still running after {timeout:g} s")
            time.sleep(interval)

    def control(self, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(self.config.control_socket)
            except (FileNotFoundError, ConnectionRefusedError):
                raise RuntimeFailure(f"monitor of {self.id} is not running") from None
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        reply = json.loads(data or b"{}")
        if "error" in reply:
            raise RuntimeFailure(f"container {self.id}: {reply['error']}")
        return dict(reply)

    def status(self) -> dict[str, Any]:
        return self.control({"op": "status"})

    def resize(self, rows: int, cols: int) -> None:
        self.control({"op": "resize", "rows": rows, "cols": cols})

    def reopen_log(self) -> None:
        self.control({"op": "reopen_log"})

    def start(self) -> int:
        """Start a container spawned with defer_start; returns the init's PID."""
        return int(self.control({"op": "start"})["pid"])

    def stop(self, signal: int | str = 15, timeout: float = 10.0) -> None:
        """Signal the container, SIGKILL after timeout; the restart policy stands down."""
        self.control({"op": "stop", "signal": signal, "timeout": timeout})

    def attach(self) -> AttachConnection:
        return AttachConnection(self.config.attach_socket)


class AttachConnection:
    """One attach session: output packets in, stdin/resize/close-stdin out."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise RuntimeFailure(f"attach {path}: {exc.strerror}") from None

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> None:
        step = protocol.MAX_PACKET - 1
        for i in range(0, len(data), step):
            self.sock.sendall(bytes((protocol.STDIN,)) + data[i : i + step])

    def close_stdin(self) -> None:
        self.sock.sendall(bytes((protocol.CLOSE_STDIN,)))

    def resize(self, rows: int, cols: int) -> None:
        self.sock.sendall(bytes((protocol.RESIZE,)) + f"{rows} {cols}".encode())

    def detach(self) -> None:
        self.send(protocol.DETACH_KEYS)

    def recv(self, timeout: float | None = None) -> tuple[int, bytes] | None:
        """(kind, payload) of the next packet (protocol.STDOUT, ...), None at the end."""
        self.sock.settimeout(timeout)
        packet = self.sock.recv(protocol.MAX_PACKET)
        if not packet:
            return None
        return packet[0], packet[1:]

    def read_until(self, needle: bytes, timeout: float = 30.0) -> bytes:
        """Output (both streams) until `needle` shows up; raises TimeoutError if it does not."""
        deadline = time.monotonic() + timeout
        data = b""
        while needle not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{needle!r} not seen; got {data[-500:]!r}")
            try:
                packet = self.recv(left)
            except TimeoutError:
                continue
            if packet is None:
                raise EOFError(f"attach closed before {needle!r}; got {data[-500:]!r}")
            if packet[0] in (protocol.STDOUT, protocol.STDERR):
                data += packet[1]
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> AttachConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    return doc if isinstance(doc, dict) else None

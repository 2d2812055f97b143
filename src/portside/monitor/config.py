"""The monitor's config file: one small versioned JSON document instead of dozens of flags.

The engine writes it (atomically) and starts the monitor with its path as the
only argument. Version 1, every key but the first four optional::

    {
      "version": 1,
      "id": "c0ffee",                       container ID given to the runtime
      "bundle": "/run/portside/c/c0ffee/bundle",   holds config.json
      "runtime": "/usr/bin/runc",           any runc-compatible runtime (absolute path)
      "runtime_args": ["--root", "/run/portside/runtime"],   global args before the verb
      "runtime_inprocess": true,            portside-runtime of this same tree runs in a
                                            forked child instead of a new interpreter
                                            (inproc.py); false: always exec the runtime
      "state_dir": "/run/portside/c/c0ffee/monitor",   default: the config file's directory
      "exit_dir": "...",                    exit file is EXIT_DIR/ID (default state_dir)
      "pid_file": "...",                    init PID, written by the runtime (default state_dir/pid)
      "monitor_pid_file": "...",            the monitor's own PID (default state_dir/monitor.pid)
      "attach_socket": "...",               default state_dir/attach (SOCK_SEQPACKET)
      "control_socket": "...",              default state_dir/ctl (SOCK_STREAM, JSON lines)
      "log": {"driver": "k8s-file",         "k8s-file" (CRI), "json-file" (docker) or "none"
              "path": "...",                default state_dir/ctr.log
              "max_size": 0,                bytes, 0 = no rotation
              "max_file": 1},               files kept, current one included
      "terminal": false,                    a pty through the runtime's --console-socket
      "stdin": false,                       keep a stdin pipe (or the pty) open for attach
      "stdin_once": false,                  close the stdin pipe when the first client that
                                            sent input goes away (docker's StdinOnce)
      "defer_start": false,                 create only; start on the control op "start"
                                            (so clients can attach before any output)
      "attach_replay": 0,                   bytes of recent output replayed to a new attach client
      "restart": "on-failure:2",            no | on-failure[:N] | always | unless-stopped, or
                                            {"policy": .., "max_retries": N,
                                             "backoff": 0.1, "backoff_max": 10.0}
      "healthcheck": {"test": ["CMD-SHELL", "cat /ok"],   or ["CMD", argv...]; ["NONE"] = off
                      "interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0},
      "exit_command": ["/usr/bin/portside", "container", "cleanup", "c0ffee"],
                                            run once, detached, after the exit file is written
                                            (env PORTSIDE_CONTAINER_ID, PORTSIDE_EXIT_CODE)
      "sync_fd": 3,                         inherited pipe: one JSON line, then closed
      "monitor_log": null                   the monitor's own stderr (debugging)
    }

The handshake on `sync_fd` is `{"pid": INIT_PID, "monitor_pid": PID}` once the
container is started (with defer_start: created), or `{"error": "ONE LINE"}`
(the runtime's own error line when it failed). Durations are seconds (numbers).

Control socket ops (one JSON line each way): `{"op": "status"}`, `{"op": "start"}`
(defer_start), `{"op": "stop", "signal": 15, "timeout": 10}` (no restart follows),
`{"op": "resize", "rows": R, "cols": C}`, `{"op": "reopen_log"}`, `{"op": "modules"}`.
Replies are `{"ok": true, ...}`, the status document, or `{"error": "ONE LINE"}`.

Files the monitor keeps, each written atomically (temp name + rename):
`EXIT_DIR/ID` once it is done, `{"exit_code", "signal", "oom_killed",
"started_at", "finished_at", "restart_count", "error"}`; `state_dir/state.json`
at every change (status created|running|restarting|exited, pid, restart_count,
last exit); `state_dir/health.json` (status starting|healthy|unhealthy,
failing_streak, log of the last 5 probes).
"""

from __future__ import annotations

from portside.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _T = TypeVar("_T")

VERSION = 1
LOG_DRIVERS = ("k8s-file", "json-file", "none")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


class RestartPolicy:
    """What to do when the init exits: docker's four policies plus the back-off."""

    __slots__ = ("backoff", "backoff_max", "max_retries", "name", "reset_after")

    def __init__(
        self,
        name: str = "no",
        max_retries: int = 0,
        backoff: float = 0.1,
        backoff_max: float = 10.0,
        reset_after: float = 10.0,
    ) -> None:
        self.name = name
        self.max_retries = max_retries  # 0 = unlimited (on-failure only)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.reset_after = reset_after  # a run this long resets the back-off

    @classmethod
    def parse(cls, value: Any) -> RestartPolicy:
        """From "on-failure:3" or {"policy": "on-failure", "max_retries": 3, ...}."""
        if value is None:
            return cls()
        if isinstance(value, str):
            name, _, count = value.partition(":")
            fields: dict[str, Any] = {"policy": name}
            if count:
                if not count.isdigit():
                    raise InvalidArgument(f"restart policy {value!r}: retry count is not a number")
                fields["max_retries"] = int(count)
        elif isinstance(value, dict):
            fields = value
        else:
            raise InvalidArgument("monitor config restart: expected a string or an object")
        name = fields.get("policy", "no")
        if name not in RESTART_POLICIES:
            raise InvalidArgument(
                f"restart policy {name!r}: expected one of {', '.join(RESTART_POLICIES)}"
            )
        retries = _int(fields, "max_retries", 0, "restart")
        if retries and name != "on-failure":
            raise InvalidArgument(f"restart policy {name!r}: a retry count needs on-failure")
        return cls(
            name,
            retries,
            _num(fields, "backoff", 0.1, "restart"),
            _num(fields, "backoff_max", 10.0, "restart"),
            _num(fields, "reset_after", 10.0, "restart"),
        )

    def should_restart(self, exit_code: int, restarts: int, stopped: bool) -> bool:
        """Docker's rule: a manual stop always wins; on-failure counts retries."""
        if stopped or self.name == "no":
            return False
        if self.name == "on-failure":
            return exit_code != 0 and (self.max_retries == 0 or restarts < self.max_retries)
        return True

    def delay(self, attempt: int) -> float:
        """Back-off before restart number `attempt` (0-based): doubling up to a ceiling."""
        return float(min(self.backoff * (2**attempt), self.backoff_max))

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "max_retries": self.max_retries,
            "backoff": self.backoff,
            "backoff_max": self.backoff_max,
            "reset_after": self.reset_after,
        }


NO_RESTART = RestartPolicy()  # shared: a policy is never changed once made


class HealthConfig:
    """Docker's HEALTHCHECK: the probe argv (run with `RUNTIME exec`) and its timing."""

    __slots__ = ("argv", "interval", "retries", "start_period", "timeout")

    def __init__(
        self,
        argv: list[str],
        interval: float = 30.0,
        timeout: float = 30.0,
        retries: int = 3,
        start_period: float = 0.0,
    ) -> None:
        self.argv = argv
        self.interval = interval
        self.timeout = timeout
        self.retries = retries
        self.start_period = start_period

    @classmethod
    def parse(cls, value: Any) -> HealthConfig | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise InvalidArgument("monitor config healthcheck: expected an object")
        test = value.get("test")
        if not isinstance(test, list) or not test or not all(isinstance(t, str) for t in test):
            raise InvalidArgument("monitor config healthcheck.test: expected a list of strings")
        kind = test[0]
        if kind == "NONE":
            return None
        if kind == "CMD-SHELL" and len(test) == 2:
            argv = ["/bin/sh", "-c", test[1]]
        elif kind == "CMD" and len(test) > 1:
            argv = test[1:]
        else:
            raise InvalidArgument(
                f"monitor config healthcheck.test: {test!r} is not "
                '["CMD", ARG...], ["CMD-SHELL", COMMAND] or ["NONE"]'
            )
        cfg = cls(
            argv,
            _num(value, "interval", 30.0, "healthcheck"),
            _num(value, "timeout", 30.0, "healthcheck"),
            _int(value, "retries", 3, "healthcheck"),
            _num(value, "start_period", 0.0, "healthcheck"),
        )
        if cfg.interval <= 0 or cfg.timeout <= 0 or cfg.retries < 1:
            raise InvalidArgument(
                "monitor config healthcheck: interval and timeout must be > 0, retries >= 1"
            )
        return cfg


class MonitorConfig:
    """The validated config; paths are absolute and defaults filled in."""

    __slots__ = (
        "attach_replay",
        "attach_socket",
        "bundle",
        "control_socket",
        "defer_start",
        "exit_command",
        "exit_dir",
        "healthcheck",
        "id",
        "log_driver",
        "log_max_file",
        "log_max_size",
        "log_path",
        "monitor_log",
        "monitor_pid_file",
        "pid_file",
        "restart",
        "runtime",
        "runtime_args",
        "runtime_inprocess",
        "state_dir",
        "stdin",
        "stdin_once",
        "sync_fd",
        "terminal",
    )

    def __init__(self, doc: dict[str, Any], default_dir: str = "") -> None:
        if not isinstance(doc, dict):
            raise InvalidArgument("monitor config: expected a JSON object")
        version = doc.get("version")
        if version != VERSION:
            raise InvalidArgument(
                f"monitor config version {version!r}: this monitor reads version {VERSION}"
            )
        self.id = _str(doc, "id", None)
        if not self.id or not set(self.id) <= _ID_CHARS or self.id[0] in ".-":
            raise InvalidArgument(f"monitor config id {self.id!r}: not a valid container ID")
        self.bundle = _path(doc, "bundle", None)
        self.runtime = _path(doc, "runtime", None)
        args = doc.get("runtime_args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise InvalidArgument("monitor config runtime_args: expected a list of strings")
        self.runtime_args: list[str] = args
        self.state_dir = _path(doc, "state_dir", default_dir or None)
        sd = self.state_dir
        self.exit_dir = _path(doc, "exit_dir", sd)
        self.pid_file = _path(doc, "pid_file", _join(sd, "pid"))
        self.monitor_pid_file = _path(doc, "monitor_pid_file", _join(sd, "monitor.pid"))
        self.attach_socket = _path(doc, "attach_socket", _join(sd, "attach"))
        self.control_socket = _path(doc, "control_socket", _join(sd, "ctl"))
        for key in ("attach_socket", "control_socket"):
            if len(getattr(self, key).encode()) > SOCKET_PATH_MAX:
                raise InvalidArgument(
                    f"monitor config {key}: path longer than {SOCKET_PATH_MAX} bytes"
                )
        log = doc.get("log", {})
        if not isinstance(log, dict):
            raise InvalidArgument("monitor config log: expected an object")
        self.log_driver = _str(log, "driver", "k8s-file", "log")
        if self.log_driver not in LOG_DRIVERS:
            raise InvalidArgument(
                f"monitor config log.driver {self.log_driver!r}: "
                f"expected one of {', '.join(LOG_DRIVERS)}"
            )
        self.log_path = _path(log, "path", _join(sd, "ctr.log"), "log")
        self.log_max_size = _int(log, "max_size", 0, "log")
        self.log_max_file = _int(log, "max_file", 1, "log")
        if self.log_max_size < 0 or self.log_max_file < 1:
            raise InvalidArgument("monitor config log: max_size must be >= 0 and max_file >= 1")
        self.runtime_inprocess = _bool(doc, "runtime_inprocess", True)
        self.terminal = _bool(doc, "terminal")
        self.stdin = _bool(doc, "stdin")
        self.stdin_once = _bool(doc, "stdin_once")
        self.defer_start = _bool(doc, "defer_start")
        self.attach_replay = _int(doc, "attach_replay", 0)
        restart = doc.get("restart")
        self.restart = NO_RESTART if restart is None else RestartPolicy.parse(restart)
        health = doc.get("healthcheck")
        self.healthcheck = None if health is None else HealthConfig.parse(health)
        command = doc.get("exit_command")
        if command is not None and (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) for a in command)
            or not command[0].startswith("/")
        ):
            raise InvalidArgument(
                "monitor config exit_command: expected a list of strings, an absolute path first"
            )
        self.exit_command: list[str] | None = command
        sync_fd = doc.get("sync_fd")
        if sync_fd is not None and (type(sync_fd) is not int or sync_fd < 0):
            raise InvalidArgument("monitor config sync_fd: expected a file descriptor number")
        self.sync_fd: int | None = sync_fd
        monitor_log = doc.get("monitor_log")
        self.monitor_log: str | None = (
            None if monitor_log is None else _path(doc, "monitor_log", None)
        )

    def to_state(self) -> tuple[Any, ...]:
        """Every field, in __slots__ order, as plain data (marshal can carry it)."""
        values = [getattr(self, name) for name in self.__slots__]
        r = self.restart
        h = self.healthcheck
        i = self.__slots__.index
        values[i("restart")] = None if r is NO_RESTART else [getattr(r, n) for n in r.__slots__]
        values[i("healthcheck")] = None if h is None else [getattr(h, n) for n in h.__slots__]
        return tuple(values)

    @classmethod
    def from_state(cls, state: tuple[Any, ...]) -> MonitorConfig:
        """The config `to_state` gave, without parsing or validating it again.

        A monitor forked by the zygote's forker gets its config so: the zygote
        validated it, and the parser's code and garbage stay out of the
        monitor's memory.
        """
        cfg = _fill_config(cls.__new__(cls), state)
        restart: Any = cfg.restart
        cfg.restart = NO_RESTART if restart is None else _restore(RestartPolicy, restart)
        health: Any = cfg.healthcheck
        cfg.healthcheck = None if health is None else _restore(HealthConfig, health)
        return cfg

    @property
    def exit_file(self) -> str:
        return _join(self.exit_dir, self.id)

    @property
    def state_file(self) -> str:
        return _join(self.state_dir, "state.json")

    @property
    def health_file(self) -> str:
        return _join(self.state_dir, "health.json")

    def runtime_argv(self, *args: str) -> list[str]:
        return [self.runtime, *self.runtime_args, *args]


def _slot_filler(slots: tuple[str, ...]) -> Any:
    """`fill(obj, values)`: one assignment per slot, `obj.a, obj.b, ... = values`.

    Not setattr in a loop: setattr takes the generic path, which writes the
    reference counts of each slot's name and descriptor (interned strings
    and descriptors on pages the monitor zygote shares: a forked monitor
    copies each). A STORE_ATTR per slot specialises into a plain slot store.
    A `values` of another length raises ValueError.
    """
    targets = ", ".join(f"obj.{name}" for name in slots)
    space: dict[str, Any] = {}
    code = compile(
        f"def fill(obj, values):\n    {targets}, = values\n    return obj\n",
        f"<slot filler of {', '.join(slots[:2])}, ...>",
        "exec",
    )
    exec(code, space)
    return space["fill"]


def _restore(cls: type[_T], values: list[Any]) -> _T:
    # setattr, unlike from_state: only a config with a restart policy or a healthcheck
    # comes here, and a filler per class would be two more functions for the zygote to hold
    obj = cls.__new__(cls)
    for name, value in zip(cls.__slots__, values, strict=True):  # type: ignore[attr-defined]
        setattr(obj, name, value)
    return obj


def _where(section: str | None, key: str) -> str:
    return f"monitor config {section + '.' if section else ''}{key}"


def _str(doc: dict[str, Any], key: str, default: str | None, section: str | None = None) -> str:
    value = doc.get(key, default)
    if value is None:
        raise InvalidArgument(f"{_where(section, key)}: missing")
    if not isinstance(value, str):
        raise InvalidArgument(f"{_where(section, key)}: expected a string")
    return value


def _path(doc: dict[str, Any], key: str, default: str | None, section: str | None = None) -> str:
    value = _str(doc, key, default, section)
    if not value.startswith("/"):
        raise InvalidArgument(f"{_where(section, key)} {value!r}: expected an absolute path")
    return value


def _int(doc: dict[str, Any], key: str, default: int, section: str | None = None) -> int:
    value = doc.get(key, default)
    if type(value) is not int or value < 0:
        raise InvalidArgument(f"{_where(section, key)}: expected a whole number >= 0")
    return value


def _num(doc: dict[str, Any], key: str, default: float, section: str | None = None) -> float:
    value = doc.get(key, default)
    if type(value) not in (int, float) or value < 0:
        raise InvalidArgument(f"{_where(section, key)}: expected a number of seconds >= 0")
    return float(value)


def _bool(doc: dict[str, Any], key: str, default: bool = False) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise InvalidArgument(f"monitor config {key}: expected true or false")
    return value


_fill_config = _slot_filler(MonitorConfig.__slots__)

"""The engine's surface: option and report dataclasses plus the protocols the CLI,
the Python API and later the servers program against (podman's "entities").

Only plain data crosses this line, so a remote implementation can serve the same
calls; nothing here touches the disk.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from portside.monitor.client import MonitorHandle


@dataclass
class CreateOptions:
    """What `create`/`run` accept, with docker's and podman's flag names in mind."""

    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None  # [] resets the image's entrypoint
    name: str | None = None
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    volumes: list[str] = field(default_factory=list)  # -v SRC:DST[:OPTS]
    mounts: list[str] = field(default_factory=list)  # --mount type=..,src=..,dst=..
    tmpfs: list[str] = field(default_factory=list)  # DST[:OPTS]
    interactive: bool = False
    tty: bool = False
    memory: int | None = None
    memory_swap: int | None = None  # -1 = unlimited
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)
    read_only: bool = False
    init: bool = False
    restart: str = "no"
    labels: dict[str, str] = field(default_factory=dict)
    ulimits: list[str] = field(default_factory=list)  # name=soft[:hard]
    stop_signal: str | None = None
    stop_timeout: int | None = None
    runtime: str | None = None
    log_driver: str | None = None
    log_opts: dict[str, str] = field(default_factory=dict)
    health_cmd: str | None = None
    health_interval: float | None = None
    health_timeout: float | None = None
    health_retries: int | None = None
    health_start_period: float | None = None
    no_healthcheck: bool = False
    # "" = the engine's default (portside.toml default_network, else "private": podman's
    # word for the default bridge network `portside`) | none | host | container:ID | N[,N]
    network: str = ""
    pull: str = "missing"
    remove: bool = False  # --rm
    publish: list[str] = field(default_factory=list)  # -p [HOST_IP:]HOST_PORT:CTR_PORT[/PROTO]
    publish_all: bool = False  # -P: the image's ExposedPorts on free host ports
    ip: str | None = None  # --ip (first network)
    mac_address: str | None = None  # --mac-address (first network)
    network_aliases: list[str] = field(default_factory=list)  # --network-alias


@dataclass
class ExecOptions:
    command: list[str]
    interactive: bool = False
    tty: bool = False
    env: list[str] = field(default_factory=list)
    user: str | None = None
    workdir: str | None = None
    detach: bool = False
    privileged: bool = False


@dataclass
class LogOptions:
    follow: bool = False
    since: float | None = None  # unix seconds
    until: float | None = None
    tail: int | None = None
    timestamps: bool = False


@dataclass(frozen=True)
class ContainerState:
    """The live state, docker's `State` in inspect."""

    status: str  # created | running | paused | restarting | exited | removing
    running: bool
    paused: bool
    restarting: bool
    oom_killed: bool
    dead: bool
    pid: int
    exit_code: int
    error: str
    started_at: str
    finished_at: str
    restart_count: int
    health: dict[str, Any] | None


@dataclass(frozen=True)
class ContainerInfo:
    """One container as `ps` and `inspect` see it."""

    id: str
    name: str
    image: str
    image_id: str
    command: list[str]
    created: float
    state: ContainerState
    labels: dict[str, str]
    config: dict[str, Any]  # the stored options and derived facts (spec summary)

    @property
    def short_id(self) -> str:
        return self.id[:12]


class ContainerEngine(Protocol):
    """Everything a client may do with containers (LocalEngine implements it)."""

    def create(self, opts: CreateOptions) -> ContainerInfo: ...

    def start(self, ref: str, *, attach: bool = False, stdin: bool = False) -> MonitorHandle: ...

    def stop(self, ref: str, timeout: float | None = None) -> None: ...

    def kill(self, ref: str, signal: str | int = "KILL") -> None: ...

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> str: ...

    def inspect(self, ref: str) -> ContainerInfo: ...

    def list(self, all: bool = False) -> list[ContainerInfo]: ...

    def wait(self, ref: str, timeout: float | None = None) -> int: ...

    def logs(self, ref: str, options: LogOptions) -> Iterator[tuple[str, str, bytes]]: ...

    def exec(self, ref: str, options: ExecOptions) -> int: ...

    def exec_capture(self, ref: str, options: ExecOptions) -> tuple[int, bytes, bytes]: ...

    def pause(self, ref: str) -> None: ...

    def unpause(self, ref: str) -> None: ...

    def restart(self, ref: str, timeout: float | None = None) -> None: ...

    def rename(self, ref: str, name: str) -> None: ...

    def prune(self) -> builtins.list[str]: ...

    def top(self, ref: str, ps_args: builtins.list[str]) -> str: ...

    def stats(self, ref: str) -> dict[str, Any]: ...

"""The interface the runtime drives a container's cgroup through, v1 or v2."""

from __future__ import annotations

import abc

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any


class CgroupManager(abc.ABC):
    """One container's cgroup: created before the init is forked, removed on delete.

    Resources are the OCI `linux.resources` object with the spec's field names.
    The state from to_state() is JSON and goes into the container's state.json,
    so later runtime invocations (start, kill, pause, events, delete) rebuild
    the manager with CgroupManager.from_state() instead of recomputing paths.
    """

    kind: str = ""  # "v1" or "v2"

    @abc.abstractmethod
    def create(self) -> None:
        """Make the cgroup directories (every mounted v1 controller, or the v2 dir)."""

    @abc.abstractmethod
    def apply_resources(
        self, resources: dict[str, Any], *, linux_devices: list[dict[str, Any]] | None = None
    ) -> None:
        """Write linux.resources; only the fields present are touched (so `update` works).

        When `resources` has "devices", the rules applied are runc's: those rules, then
        an allow rule for each `linux_devices` entry (spec linux.devices), then the
        default devices every container gets (null, zero, full, tty, random, urandom,
        ptmx, pts, tun). Without "devices" the device rules are left alone.
        """

    @abc.abstractmethod
    def add_process(self, pid: int) -> None: ...

    def self_join_files(self) -> list[str]:
        """Files a single-threaded process joins through by writing "0" into them itself.

        Moving oneself this way (v1 `tasks`) skips the kernel's global threadgroup
        lock, whose first taking after a quiet spell waits an RCU grace period
        (10-25 ms here); a write to cgroup.procs always takes it. None by default.
        """
        return []

    def deferred_join_dir(self) -> str | None:
        """The directory add_process_except_self_joined() moves a process into that may
        be joined after the process went on (it learns the path instead of reading its
        own /proc/self/cgroup); None when that move must come first."""
        return None

    def add_process_except_self_joined(self, pid: int) -> None:
        """add_process for the directories self_join_files() does not cover."""
        self.add_process(pid)

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """Every pid in the cgroup and its sub-cgroups."""

    @abc.abstractmethod
    def freeze(self) -> None: ...

    @abc.abstractmethod
    def thaw(self) -> None: ...

    @abc.abstractmethod
    def is_frozen(self) -> bool: ...

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Shaped like the "data" of `runc events --stats`."""

    @abc.abstractmethod
    def oom_kill_count(self) -> int: ...

    @abc.abstractmethod
    def exists(self) -> bool: ...

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the directories, retrying while exiting tasks drain."""

    @abc.abstractmethod
    def to_state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> CgroupManager:
        """Rebuild a manager from to_state() output (dispatches on its "kind")."""
        from portside.runtime.cgroups import v1, v2

        kind = data.get("kind")
        if kind == "v1":
            return v1.V1Manager.restore(data)
        if kind == "v2":
            return v2.V2Manager.restore(data)
        raise ValueError(f"unknown cgroup manager kind {kind!r} in state")

"""Container cgroups with the cgroupfs driver, v1 and v2, behind one manager interface.

    mgr = create_manager(container_id, spec["linux"].get("cgroupsPath"))
    mgr.create(); mgr.apply_resources(spec["linux"].get("resources") or {})
    mgr.add_process(pid)
    state["cgroup"] = mgr.to_state()          # later: CgroupManager.from_state(...)

On a hybrid host (v1 controllers plus a cgroup2 mount with no controllers,
like this one) the v1 manager is used, as runc does.
"""

from __future__ import annotations

from portside.errors import CgroupError
from portside.runtime.cgroups import paths
from portside.runtime.cgroups.paths import (
    Mounts,
    inner_path,
    own_cgroups,
    read_mounts,
    systemd_running,
)

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from portside.runtime.cgroups.devices import DEFAULT_ALLOWED, Rule, container_rules
    from portside.runtime.cgroups.manager import CgroupManager

# loaded on first use: the runtime works out a container's paths (paths) before its
# fork, and the rest of the package loads after it, beside the child's work
_LAZY = {
    "DEFAULT_ALLOWED": "devices",
    "Rule": "devices",
    "container_rules": "devices",
    "CgroupManager": "manager",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    __import__(f"{__name__}.{module}")
    value = getattr(globals()[module], name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ALLOWED",
    "CgroupError",
    "CgroupManager",
    "Rule",
    "container_rules",
    "create_manager",
    "detect_mode",
    "from_state",
    "own_cgroups",
    "paths",
    "read_mounts",
    "watch_oom",
]


def detect_mode(mounts: Mounts | None = None) -> str:
    """ "v1", "hybrid" or "v2" (unified) for this mount namespace."""
    return (mounts or read_mounts()).mode


def create_manager(
    container_id: str,
    cgroups_path: str | None,
    *,
    systemd: bool = False,
    mounts: Mounts | None = None,
) -> CgroupManager:
    """The manager for a container's cgroup (nothing is created until .create()).

    cgroups_path as runc: absolute = from each hierarchy root; relative = below the
    runtime's own cgroup; None = the container id, relative.
    """
    if systemd:
        if not systemd_running():
            raise CgroupError(
                "systemd cgroup driver requested (--systemd-cgroup) but systemd is not"
                " running on this host (no /run/systemd/system); use the cgroupfs driver"
            )
        raise CgroupError(
            "the systemd cgroup driver is not supported by portside-runtime; "
            "run without --systemd-cgroup"
        )
    try:
        inner = inner_path(container_id, cgroups_path)
    except ValueError as exc:
        raise CgroupError(f"linux.cgroupsPath: {exc}") from exc
    mounts = mounts or read_mounts()
    own = own_cgroups()
    if mounts.mode in ("v1", "hybrid"):
        from portside.runtime.cgroups.v1 import V1Manager

        return V1Manager.for_container(container_id, inner, mounts, own)
    if mounts.mode == "v2" and mounts.unified:
        from portside.runtime.cgroups.v2 import V2Manager

        return V2Manager.for_container(container_id, inner, mounts.unified, own)
    raise CgroupError("no cgroup filesystem is mounted under /sys/fs/cgroup")


def watch_oom(manager: CgroupManager, **kwargs: Any) -> Iterator[int]:
    """See portside.runtime.cgroups.events.watch_oom (imported lazily: it needs threading)."""
    from portside.runtime.cgroups.events import watch_oom as _watch

    return _watch(manager, **kwargs)


def from_state(data: dict[str, object]) -> CgroupManager:
    """Same as CgroupManager.from_state."""
    from portside.runtime.cgroups.manager import CgroupManager

    return CgroupManager.from_state(dict(data))

"""The runtime's side of the cgroup manager (portside.runtime.cgroups): make, save, restore.

Imported only by verbs that need a cgroup, so `state` and `list` stay light.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any


def create(cid: str, path: str | None, *, systemd: bool) -> Any:
    from portside.runtime import cgroups

    return cgroups.create_manager(cid, path, systemd=systemd)


def plan_v1(cid: str, path: str | None, *, systemd: bool) -> dict[str, str] | None:
    """The directories of a container's v1 (or hybrid) cgroup, by the path rules alone, or
    None where the manager must be made the usual way first (the systemd driver, a
    cgroup2-only host, a cgroupsPath the manager refuses: it says why).

    Cheap on purpose: the runtime calls it before its fork and makes the cgroup after,
    while the child works (see launcher.create); manager_for() takes it from there."""
    if systemd:
        return None
    from portside.runtime.cgroups import paths

    try:
        inner = paths.inner_path(cid, path)
    except ValueError:
        return None
    mounts = paths.read_mounts()
    if mounts.mode not in ("v1", "hybrid"):
        return None
    return paths.v1_layout(inner, mounts, paths.own_cgroups())


def unified_dir(layout: dict[str, str]) -> str | None:
    """The cgroup2 directory of a plan_v1() layout on a hybrid host (None elsewhere)."""
    from portside.runtime.cgroups.paths import UNIFIED

    return layout.get(UNIFIED)


def manager_for(cid: str, layout: dict[str, str]) -> Any:
    """The v1 manager of a plan_v1() layout (nothing made yet)."""
    from portside.runtime.cgroups.v1 import V1Manager

    return V1Manager(layout, container_id=cid)


def dump(manager: Any) -> dict[str, Any] | None:
    if manager is None:
        return None
    state: dict[str, Any] = manager.to_state()
    return state


def load(saved: dict[str, Any]) -> Any:
    from portside.runtime import cgroups

    return cgroups.from_state(saved)


# The first cgroup migration of a process through cgroup.procs waits for an RCU grace
# period (the kernel switches its global cgroup_threadgroup_rwsem to writer mode),
# 10-25 ms here; any migration in the next grace period or so is fast. The child moves
# itself into its v1 cgroups through `tasks`, which needs no such lock
# (CgroupManager.self_join_files); only a cgroup2 directory (a hybrid host's, or a
# unified host's) is joined through cgroup.procs. Where stage 1 has to wait for that
# (`exec`; a user or cgroup namespace; a cgroup2 directory the init cannot be told),
# the runtime starts a thread that keeps moving itself into the cgroup2 cgroup it is
# already in (a no-op) while it loads and forks, so the child's move finds the kernel
# ready. It stops once the child has joined.
#
# The wait happens with the kernel's cgroup_mutex held, so it stalls every cgroup
# mkdir (and `tasks` move) meanwhile: it starts after the cgroup is made.
_running: list[list[bool]] = []


def warm_up() -> None:
    """Start the no-op migrations in the background (best effort, never an error); a
    host without a cgroup2 hierarchy has nothing to warm up."""
    import _thread

    flag = [True]
    _running.append(flag)
    _thread.start_new_thread(_warm_loop, (flag,))


def cool_down() -> None:
    for flag in _running:
        flag[0] = False
    _running.clear()


def _warm_loop(flag: list[bool]) -> None:
    import posix
    import time

    try:
        target = _own_procs_file()
        while target and flag[0]:
            fd = posix.open(target, posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, b"0")  # 0: the writing process, into the cgroup it is in
            finally:
                posix.close(fd)
            time.sleep(0.002)
    except OSError:
        pass


def _own_procs_file() -> str | None:
    """cgroup.procs of the runtime's own cgroup in a mounted cgroup2 hierarchy."""
    with open("/proc/self/cgroup") as f:
        own = {}
        for line in f.read().splitlines():
            _, ctrls, where = line.split(":", 2)
            own[ctrls] = where
    with open("/proc/self/mountinfo") as f:
        mounts = f.read().splitlines()
    for line in mounts:
        if "\\" in line:
            continue  # an escaped path: not worth decoding for an optimisation
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mountpoint = fields[3], fields[4]
        path: str | None
        if tail[0] != "cgroup2":
            continue
        path = own.get("")
        if path is None:
            continue
        if root == "/":
            rel = path
        elif path == root or path.startswith(root + "/"):
            rel = path[len(root) :]
        else:
            continue
        return mountpoint.rstrip("/") + (rel if rel != "/" else "") + "/cgroup.procs"
    return None

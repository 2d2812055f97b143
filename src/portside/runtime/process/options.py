"""How the caller wants the container's process started: what the runtime hands its child.

A module of its own so the runtime can fill it in without loading the child's code
(process.init), which the child loads after the fork, beside the runtime's cgroup work.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any


class Options:
    """How the caller wants the process started (create/run/exec flags)."""

    def __init__(self) -> None:
        self.console_socket: str | None = None
        self.fifo_fd = -1  # O_PATH fd of the exec fifo, opened by the runtime
        self.start_on_pipe = False  # `run`: START comes on the sync pipe instead (no fifo)
        self.no_pivot = False
        self.no_new_keyring = False
        self.preserve_fds = 0
        self.join_pid: int | None = None  # exec: the container init to join
        self.is_exec = False
        self.id = ""
        self.host_pid = 0
        self.seccomp_conn: Any = None  # listenerPath, connected as early as the console
        self.console_conn: Any = None  # connected before any namespace is entered
        self.late_cgroup = False  # stage 1 goes on without waiting for the runtime
        self.cgroup_join: list[str] = []  # files stage 1 moves itself through, first thing
        self.cgroup2_dir: str | None = None  # what the init's cgroup mount shows for cgroup2
        self.cgroup_wait = False  # the init waits for GO before its cgroup mount
        # the runtime makes the cgroup after the fork: the init waits for GO before its
        # cgroup mount and moves itself through the files GO names (its "join")
        self.join_on_go = False
        self.close_fds: list[int] = []  # the runtime's own (its state lock): not ours to hold
        # stage 1 is the init itself: the runtime made the PID namespace (see launcher)
        self.direct = False

"""pid_alive: a running process is alive; a zombie, a reaped one and no pid are not.
process_start_time: the same for every read of one process, later for a later one."""

from __future__ import annotations

import os
import time

from portside.linux.procfs import pid_alive, process_start_time


def test_running_zombie_and_reaped_processes() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0) and not pid_alive(-1)
    child = os.fork()
    if child == 0:
        os._exit(0)
    deadline = time.monotonic() + 10
    while pid_alive(child):  # exits at once; a zombie until we reap it
        assert time.monotonic() < deadline, "the child's exit never showed"
        time.sleep(0.01)
    with open(f"/proc/{child}/stat") as f:
        assert f.read().rpartition(")")[2].split()[0] == "Z"  # still there, as a zombie
    os.waitpid(child, 0)
    assert not pid_alive(child)


def test_start_time_names_one_process() -> None:
    ours = process_start_time(os.getpid())
    assert ours is not None and ours == process_start_time(os.getpid())
    child = os.fork()
    if child == 0:
        time.sleep(0.05)
        os._exit(0)
    try:
        theirs = process_start_time(child)
        assert theirs is not None and theirs >= ours
    finally:
        os.waitpid(child, 0)
    assert process_start_time(child) is None  # reaped

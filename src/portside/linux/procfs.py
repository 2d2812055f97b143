"""What /proc says about a process: whether the one that owns something still runs.

The stores and the engine name what they leave behind after the process that made it
(an overlay probe directory, a build's work dirs, a container's monitor) and clean it
up only once that process is gone. A zombie counts as gone: its work is over.
"""

from __future__ import annotations


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (exists and is not a zombie)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rpartition(b")")[2].split()[0] != b"Z"

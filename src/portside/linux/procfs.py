"""What /proc says about a process: whether the one that owns something still runs,
and when it started (which tells a reused pid from the process it named).

The stores and the engine name what they leave behind after the process that made it
(an overlay probe directory, a build's work dirs, a container's monitor) and clean it
up only once that process is gone. A zombie counts as gone: its work is over.
"""

from __future__ import annotations


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (when it started, in clock ticks since boot), or None if
    the process is gone or a zombie: with the pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (exists and is not a zombie)."""
    return pid > 0 and process_start_time(pid) is not None

"""`stats`: a container's usage read from its cgroup (v1 controllers, or cgroup v2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_V1 = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int:
    try:
        text = path.read_text().strip()
    except OSError:
        return 0
    if text == "max":
        return 0
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return 0


def cgroup_stats(cgroup: str) -> dict[str, Any]:
    """cpu_ns, mem_usage, mem_limit, pids of the cgroup at `cgroup` (cgroupsPath)."""
    rel = cgroup.strip("/")
    if (_V1 / "memory").is_dir():
        mem = _V1 / "memory" / rel
        usage = _read_int(mem / "memory.usage_in_bytes")
        cache = 0
        try:
            for line in (mem / "memory.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "total_inactive_file":
                    cache = int(value)
        except (OSError, ValueError):
            pass
        limit = _read_int(mem / "memory.limit_in_bytes")
        cpu = _read_int(_V1 / "cpuacct" / rel / "cpuacct.usage") or _read_int(
            _V1 / "cpu,cpuacct" / rel / "cpuacct.usage"
        )
        pids = _read_int(_V1 / "pids" / rel / "pids.current")
        return {
            "cpu_ns": cpu,
            "mem_usage": max(0, usage - cache),
            "mem_limit": limit if limit < (1 << 62) else _host_memory(),
            "pids": pids,
        }
    base = _V1 / rel
    cpu_us = 0
    try:
        for line in (base / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                cpu_us = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return {
        "cpu_ns": cpu_us * 1000,
        "mem_usage": _read_int(base / "memory.current"),
        "mem_limit": _read_int(base / "memory.max") or _host_memory(),
        "pids": _read_int(base / "pids.current"),
    }


def _host_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0

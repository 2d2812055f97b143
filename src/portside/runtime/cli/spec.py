"""`spec [--rootless] [-b BUNDLE]`: write a default config.json, as `runc spec` does."""

from __future__ import annotations

import json
import os

from portside.errors import AlreadyExists
from portside.runtime.cli import args as a
from portside.runtime.cli.main import Globals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: a.Spec = {
    "--bundle": ("bundle", a.STR),
    "-b": ("bundle", a.STR),
    "--rootless": ("rootless", a.BOOL),
}

CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec(rootless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "ociVersion": "1.3.0",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                k: list(CAPS) for k in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }
    if rootless:
        _make_rootless(spec)
    return spec


def _make_rootless(spec: dict[str, Any]) -> None:
    """As runc: a user namespace mapping us, no network namespace, /sys bound."""
    linux = spec["linux"]
    del linux["resources"]
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    linux["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")]
    mounts = []
    for m in spec["mounts"]:
        if m["destination"] == "/sys":
            m = {
                "destination": "/sys",
                "type": "none",
                "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
            }
        if m["type"] == "devpts":
            m["options"] = [o for o in m["options"] if o != "gid=5"]
        mounts.append(m)
    spec["mounts"] = mounts


def main(g: Globals, verb: str, argv: list[str]) -> int:
    opts, _ = a.parse(argv, FLAGS)
    bundle = str(opts.get("bundle") or ".")
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise AlreadyExists("File config.json exists. Remove it first")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(default_spec(bool(opts["rootless"])), f, indent="\t")
    os.rename(tmp, path)
    return 0

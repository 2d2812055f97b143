"""Where the cgroup hierarchies are mounted and where a container's cgroup goes.

cgroupsPath follows runc's cgroupfs driver: an absolute path is taken from
each hierarchy's root, a relative one from the runtime's own cgroup in that
hierarchy (read from /proc/self/cgroup), and no path at all means the
container id, relative. Paths are cleaned lexically first so `..` can never
climb out of a hierarchy.
"""

from __future__ import annotations

from portside.linux import pathops

CGROUP_ROOT = "/sys/fs/cgroup"

# v1 controllers this runtime drives, in the order runc joins them.
V1_CONTROLLERS = (
    "cpuset",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "freezer",
    "rdma",
    "misc",
)

# Controllers a v1 container gets a directory in (named hierarchies such as name=systemd
# are joined too, as runc does, so tools that look there find the container).
JOINED = (*V1_CONTROLLERS, "systemd")

UNIFIED = "unified"  # key of the cgroup2 directory in a hybrid layout


class Mounts:
    """The cgroup mounts of this mount namespace."""

    def __init__(
        self,
        v1: dict[str, str] | None = None,
        v1_roots: dict[str, str] | None = None,
        unified: str | None = None,
        unified_root: str = "/",
    ) -> None:
        self.v1 = v1 if v1 is not None else {}  # controller -> mountpoint
        self.v1_roots = v1_roots if v1_roots is not None else {}  # controller -> root in fs
        self.unified = unified  # the cgroup2 mountpoint, if any
        self.unified_root = unified_root

    @property
    def mode(self) -> str:
        """ "v2" (unified only), "hybrid" (v1 controllers plus a cgroup2 mount) or "v1"."""
        if not self.v1:
            return "v2" if self.unified else "none"
        return "hybrid" if self.unified else "v1"


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 4 <= len(text) and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> Mounts:
    mounts = Mounts()
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        fstype, _source, *rest = right.split()
        super_opts = rest[0].split(",") if rest else []
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup2":
            if mounts.unified is None:
                mounts.unified, mounts.unified_root = mountpoint, root
        elif fstype == "cgroup":
            for opt in super_opts:
                name = opt.removeprefix("name=") if opt.startswith("name=") else opt
                if opt in V1_CONTROLLERS or opt.startswith("name="):
                    mounts.v1.setdefault(name, mountpoint)
                    mounts.v1_roots.setdefault(name, root)
    return mounts


def read_mounts(mountinfo: str = "/proc/self/mountinfo") -> Mounts:
    with open(mountinfo) as f:
        return parse_mountinfo(f.read())


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; the v2 entry is keyed ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            out[""] = path
            continue
        for ctrl in controllers.split(","):
            out[ctrl.removeprefix("name=")] = path
    return out


def own_cgroups(pid: int | str = "self") -> dict[str, str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return parse_proc_cgroup(f.read())


def clean_path(path: str) -> str:
    """Lexically clean a cgroupsPath; a relative one cannot climb above its start."""
    if not path:
        return ""
    if path.startswith("/"):
        return pathops.normpath(path).replace("//", "/")
    cleaned = pathops.normpath("/" + path).lstrip("/")
    return cleaned or ""


def inner_path(container_id: str, cgroups_path: str | None) -> str:
    """runc: the configured path, or the container id (relative) when none is given."""
    inner = clean_path(cgroups_path or "")
    if not inner:
        inner = clean_path(container_id)
    if inner in ("", "/"):
        raise ValueError(f"cgroupsPath {cgroups_path!r} names a hierarchy root")
    return inner


def v1_path(mounts: Mounts, controller: str, inner: str, own: dict[str, str]) -> str:
    mountpoint = mounts.v1[controller]
    if inner.startswith("/"):
        return pathops.join(mountpoint, inner.lstrip("/"))
    base = own.get(controller, "/")
    # When the hierarchy is mounted from a sub-cgroup (a container), strip that root.
    root = mounts.v1_roots.get(controller, "/")
    if root != "/" and (base == root or base.startswith(root + "/")):
        base = base[len(root) :] or "/"
    return pathops.join(mountpoint, base.lstrip("/"), inner)


def v2_path(mountpoint: str, inner: str, own: dict[str, str], root: str = "/") -> str:
    if inner.startswith("/"):
        return pathops.join(mountpoint, inner.lstrip("/"))
    # Our own cgroup has processes in it (us), and v2 forbids controllers in a
    # cgroup with processes: go under its parent, as runc does.
    base = pathops.dirname(own.get("", "/")) or "/"
    if root != "/" and (base == root or base.startswith(root + "/")):
        base = base[len(root) :] or "/"
    return pathops.join(mountpoint, base.lstrip("/"), inner)


def v1_layout(inner: str, mounts: Mounts, own: dict[str, str]) -> dict[str, str]:
    """A v1 (or hybrid) container's directories: {controller: path}, plus UNIFIED on a
    hybrid host. Only path rules (this module): the runtime works them out before its
    fork and loads the manager that writes the files after it."""
    out = {}
    for ctrl in JOINED:
        if ctrl in mounts.v1:
            # co-mounted controllers (cpu,cpuacct) resolve to one shared directory
            out[ctrl] = v1_path(mounts, ctrl, inner, own)
    if not out:
        from portside.errors import CgroupError

        raise CgroupError("no cgroup v1 controllers are mounted")
    if mounts.unified is not None:
        # Hybrid host: runc also puts the container in the cgroup2 hierarchy (same
        # relative rules, under our own v2 cgroup), so v2-aware tools find it there.
        if inner.startswith("/"):
            unified = pathops.join(mounts.unified, inner.lstrip("/"))
        else:
            base = own.get("", "/").lstrip("/")
            unified = pathops.join(mounts.unified, base, inner)
        out[UNIFIED] = unified
    return out


def systemd_running() -> bool:
    """sd_booted(3)'s test: systemd as init creates /run/systemd/system."""
    return pathops.isdir("/run/systemd/system")

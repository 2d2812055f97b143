"""The OCI runtime-spec 1.3 bundle `config.json` and the runtime `state`, as typed dataclasses.

Every object keeps the keys it does not know in `extra`, so a config written by another
engine (or a newer spec) survives a read-modify-write through us unchanged. The runtime
imports this on every container start: stdlib only, no schema validation here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Self

from portside.errors import InvalidDocument
from portside.oci._json import JSONModel, jkey, load_json

__all__ = [
    "CPU",
    "NAMESPACE_TYPES",
    "OCI_VERSION",
    "STATUSES",
    "BlockIO",
    "Capabilities",
    "ConsoleSize",
    "Device",
    "DeviceCgroup",
    "Hook",
    "Hooks",
    "HugepageLimit",
    "IDMapping",
    "IOPriority",
    "IntelRdt",
    "Linux",
    "Memory",
    "Mount",
    "Namespace",
    "Network",
    "POSIXRlimit",
    "Personality",
    "Pids",
    "Process",
    "Resources",
    "Root",
    "Scheduler",
    "Seccomp",
    "Spec",
    "State",
    "Syscall",
    "SyscallArg",
    "User",
    "default_spec",
]

OCI_VERSION = "1.3.0"
NAMESPACE_TYPES = frozenset({"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"})
STATUSES = ("creating", "created", "running", "stopped")

# --- process ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class ConsoleSize(JSONModel):
    height: int = field(metadata=jkey("height", "uint"))
    width: int = field(metadata=jkey("width", "uint"))


@dataclass(kw_only=True)
class User(JSONModel):
    uid: int = field(default=0, metadata=jkey("uid", "uint"))
    gid: int = field(default=0, metadata=jkey("gid", "uint"))
    umask: int | None = field(default=None, metadata=jkey("umask", "uint"))
    additional_gids: list[int] | None = field(default=None, metadata=jkey("additionalGids", "list"))
    username: str | None = field(default=None, metadata=jkey("username", "str"))


@dataclass(kw_only=True)
class Capabilities(JSONModel):
    bounding: list[str] | None = field(default=None, metadata=jkey("bounding", "strlist"))
    effective: list[str] | None = field(default=None, metadata=jkey("effective", "strlist"))
    inheritable: list[str] | None = field(default=None, metadata=jkey("inheritable", "strlist"))
    permitted: list[str] | None = field(default=None, metadata=jkey("permitted", "strlist"))
    ambient: list[str] | None = field(default=None, metadata=jkey("ambient", "strlist"))


@dataclass(kw_only=True)
class POSIXRlimit(JSONModel):
    type: str = field(metadata=jkey("type", "str"))
    hard: int = field(metadata=jkey("hard", "uint"))
    soft: int = field(metadata=jkey("soft", "uint"))


@dataclass(kw_only=True)
class IOPriority(JSONModel):
    class_: str = field(metadata=jkey("class", "str"))
    priority: int | None = field(default=None, metadata=jkey("priority", "int"))


@dataclass(kw_only=True)
class Scheduler(JSONModel):
    policy: str = field(metadata=jkey("policy", "str"))
    nice: int | None = field(default=None, metadata=jkey("nice", "int"))
    priority: int | None = field(default=None, metadata=jkey("priority", "int"))
    flags: list[str] | None = field(default=None, metadata=jkey("flags", "strlist"))
    runtime: int | None = field(default=None, metadata=jkey("runtime", "uint"))
    deadline: int | None = field(default=None, metadata=jkey("deadline", "uint"))
    period: int | None = field(default=None, metadata=jkey("period", "uint"))


@dataclass(kw_only=True)
class CPUAffinity(JSONModel):
    initial: str | None = field(default=None, metadata=jkey("initial", "str"))
    final: str | None = field(default=None, metadata=jkey("final", "str"))


@dataclass(kw_only=True)
class Process(JSONModel):
    terminal: bool | None = field(default=None, metadata=jkey("terminal", "bool"))
    console_size: ConsoleSize | None = field(
        default=None, metadata=jkey("consoleSize", "model", model=ConsoleSize)
    )
    user: User = field(default_factory=User, metadata=jkey("user", "model", model=User))
    args: list[str] | None = field(default=None, metadata=jkey("args", "strlist"))
    command_line: str | None = field(default=None, metadata=jkey("commandLine", "str"))
    env: list[str] | None = field(default=None, metadata=jkey("env", "strlist"))
    cwd: str = field(metadata=jkey("cwd", "str"))
    capabilities: Capabilities | None = field(
        default=None, metadata=jkey("capabilities", "model", model=Capabilities)
    )
    rlimits: list[POSIXRlimit] | None = field(
        default=None, metadata=jkey("rlimits", "models", model=POSIXRlimit)
    )
    no_new_privileges: bool | None = field(default=None, metadata=jkey("noNewPrivileges", "bool"))
    apparmor_profile: str | None = field(default=None, metadata=jkey("apparmorProfile", "str"))
    oom_score_adj: int | None = field(default=None, metadata=jkey("oomScoreAdj", "int"))
    selinux_label: str | None = field(default=None, metadata=jkey("selinuxLabel", "str"))
    io_priority: IOPriority | None = field(
        default=None, metadata=jkey("ioPriority", "model", model=IOPriority)
    )
    scheduler: Scheduler | None = field(
        default=None, metadata=jkey("scheduler", "model", model=Scheduler)
    )
    exec_cpu_affinity: CPUAffinity | None = field(
        default=None, metadata=jkey("execCPUAffinity", "model", model=CPUAffinity)
    )

    def _validate(self, where: str) -> None:
        if not self.cwd.startswith("/"):
            raise InvalidDocument(f"{where}.cwd: must be an absolute path, got {self.cwd!r}")

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out


# --- root, mounts, hooks ----------------------------------------------------------------


@dataclass(kw_only=True)
class Root(JSONModel):
    path: str = field(metadata=jkey("path", "str"))
    readonly: bool | None = field(default=None, metadata=jkey("readonly", "bool"))


@dataclass(kw_only=True)
class IDMapping(JSONModel):
    container_id: int = field(metadata=jkey("containerID", "uint"))
    host_id: int = field(metadata=jkey("hostID", "uint"))
    size: int = field(metadata=jkey("size", "uint"))


@dataclass(kw_only=True)
class Mount(JSONModel):
    destination: str = field(metadata=jkey("destination", "str"))
    type: str | None = field(default=None, metadata=jkey("type", "str"))
    source: str | None = field(default=None, metadata=jkey("source", "str"))
    options: list[str] | None = field(default=None, metadata=jkey("options", "strlist"))
    uid_mappings: list[IDMapping] | None = field(
        default=None, metadata=jkey("uidMappings", "models", model=IDMapping)
    )
    gid_mappings: list[IDMapping] | None = field(
        default=None, metadata=jkey("gidMappings", "models", model=IDMapping)
    )


@dataclass(kw_only=True)
class Hook(JSONModel):
    path: str = field(metadata=jkey("path", "str"))
    args: list[str] | None = field(default=None, metadata=jkey("args", "strlist"))
    env: list[str] | None = field(default=None, metadata=jkey("env", "strlist"))
    timeout: int | None = field(default=None, metadata=jkey("timeout", "int"))

    def _validate(self, where: str) -> None:
        if self.timeout is not None and self.timeout < 1:
            raise InvalidDocument(f"{where}.timeout: must be at least 1, got {self.timeout}")


@dataclass(kw_only=True)
class Hooks(JSONModel):
    prestart: list[Hook] | None = field(
        default=None, metadata=jkey("prestart", "models", model=Hook)
    )
    create_runtime: list[Hook] | None = field(
        default=None, metadata=jkey("createRuntime", "models", model=Hook)
    )
    create_container: list[Hook] | None = field(
        default=None, metadata=jkey("createContainer", "models", model=Hook)
    )
    start_container: list[Hook] | None = field(
        default=None, metadata=jkey("startContainer", "models", model=Hook)
    )
    poststart: list[Hook] | None = field(
        default=None, metadata=jkey("poststart", "models", model=Hook)
    )
    poststop: list[Hook] | None = field(
        default=None, metadata=jkey("poststop", "models", model=Hook)
    )


# --- linux -----------------------------------------------------------------------------


@dataclass(kw_only=True)
class Namespace(JSONModel):
    type: str = field(metadata=jkey("type", "str"))
    path: str | None = field(default=None, metadata=jkey("path", "str"))

    def _validate(self, where: str) -> None:
        if self.type not in NAMESPACE_TYPES:
            raise InvalidDocument(f"{where}.type: unknown namespace type {self.type!r}")


@dataclass(kw_only=True)
class Device(JSONModel):
    type: str = field(metadata=jkey("type", "str"))
    path: str = field(metadata=jkey("path", "str"))
    major: int | None = field(default=None, metadata=jkey("major", "int"))
    minor: int | None = field(default=None, metadata=jkey("minor", "int"))
    file_mode: int | None = field(default=None, metadata=jkey("fileMode", "uint"))
    uid: int | None = field(default=None, metadata=jkey("uid", "uint"))
    gid: int | None = field(default=None, metadata=jkey("gid", "uint"))


@dataclass(kw_only=True)
class DeviceCgroup(JSONModel):
    allow: bool = field(metadata=jkey("allow", "bool"))
    type: str | None = field(default=None, metadata=jkey("type", "str"))
    major: int | None = field(default=None, metadata=jkey("major", "int"))
    minor: int | None = field(default=None, metadata=jkey("minor", "int"))
    access: str | None = field(default=None, metadata=jkey("access", "str"))


@dataclass(kw_only=True)
class Memory(JSONModel):
    limit: int | None = field(default=None, metadata=jkey("limit", "int"))
    reservation: int | None = field(default=None, metadata=jkey("reservation", "int"))
    swap: int | None = field(default=None, metadata=jkey("swap", "int"))
    kernel: int | None = field(default=None, metadata=jkey("kernel", "int"))
    kernel_tcp: int | None = field(default=None, metadata=jkey("kernelTCP", "int"))
    swappiness: int | None = field(default=None, metadata=jkey("swappiness", "uint"))
    disable_oom_killer: bool | None = field(default=None, metadata=jkey("disableOOMKiller", "bool"))
    use_hierarchy: bool | None = field(default=None, metadata=jkey("useHierarchy", "bool"))
    check_before_update: bool | None = field(
        default=None, metadata=jkey("checkBeforeUpdate", "bool")
    )


@dataclass(kw_only=True)
class CPU(JSONModel):
    shares: int | None = field(default=None, metadata=jkey("shares", "uint"))
    quota: int | None = field(default=None, metadata=jkey("quota", "int"))
    burst: int | None = field(default=None, metadata=jkey("burst", "uint"))
    period: int | None = field(default=None, metadata=jkey("period", "uint"))
    realtime_runtime: int | None = field(default=None, metadata=jkey("realtimeRuntime", "int"))
    realtime_period: int | None = field(default=None, metadata=jkey("realtimePeriod", "uint"))
    cpus: str | None = field(default=None, metadata=jkey("cpus", "str"))
    mems: str | None = field(default=None, metadata=jkey("mems", "str"))
    idle: int | None = field(default=None, metadata=jkey("idle", "int"))


@dataclass(kw_only=True)
class Pids(JSONModel):
    limit: int = field(metadata=jkey("limit", "int"))


@dataclass(kw_only=True)
class BlockIO(JSONModel):
    """Per-device entries stay plain dicts ({major, minor, weight|rate, ...})."""

    weight: int | None = field(default=None, metadata=jkey("weight", "uint"))
    leaf_weight: int | None = field(default=None, metadata=jkey("leafWeight", "uint"))
    weight_device: list[dict[str, Any]] | None = field(
        default=None, metadata=jkey("weightDevice", "list")
    )
    throttle_read_bps_device: list[dict[str, Any]] | None = field(
        default=None, metadata=jkey("throttleReadBpsDevice", "list")
    )
    throttle_write_bps_device: list[dict[str, Any]] | None = field(
        default=None, metadata=jkey("throttleWriteBpsDevice", "list")
    )
    throttle_read_iops_device: list[dict[str, Any]] | None = field(
        default=None, metadata=jkey("throttleReadIOPSDevice", "list")
    )
    throttle_write_iops_device: list[dict[str, Any]] | None = field(
        default=None, metadata=jkey("throttleWriteIOPSDevice", "list")
    )


@dataclass(kw_only=True)
class HugepageLimit(JSONModel):
    page_size: str = field(metadata=jkey("pageSize", "str"))
    limit: int = field(metadata=jkey("limit", "uint"))


@dataclass(kw_only=True)
class Network(JSONModel):
    class_id: int | None = field(default=None, metadata=jkey("classID", "uint"))
    priorities: list[dict[str, Any]] | None = field(
        default=None, metadata=jkey("priorities", "list")
    )


@dataclass(kw_only=True)
class Resources(JSONModel):
    devices: list[DeviceCgroup] | None = field(
        default=None, metadata=jkey("devices", "models", model=DeviceCgroup)
    )
    memory: Memory | None = field(default=None, metadata=jkey("memory", "model", model=Memory))
    cpu: CPU | None = field(default=None, metadata=jkey("cpu", "model", model=CPU))
    pids: Pids | None = field(default=None, metadata=jkey("pids", "model", model=Pids))
    block_io: BlockIO | None = field(default=None, metadata=jkey("blockIO", "model", model=BlockIO))
    hugepage_limits: list[HugepageLimit] | None = field(
        default=None, metadata=jkey("hugepageLimits", "models", model=HugepageLimit)
    )
    network: Network | None = field(default=None, metadata=jkey("network", "model", model=Network))
    rdma: dict[str, Any] | None = field(default=None, metadata=jkey("rdma", "object"))
    unified: dict[str, str] | None = field(default=None, metadata=jkey("unified", "strmap"))


@dataclass(kw_only=True)
class SyscallArg(JSONModel):
    index: int = field(metadata=jkey("index", "uint"))
    value: int = field(metadata=jkey("value", "uint"))
    value_two: int | None = field(default=None, metadata=jkey("valueTwo", "uint"))
    op: str = field(metadata=jkey("op", "str"))


@dataclass(kw_only=True)
class Syscall(JSONModel):
    names: list[str] = field(metadata=jkey("names", "strlist"))
    action: str = field(metadata=jkey("action", "str"))
    errno_ret: int | None = field(default=None, metadata=jkey("errnoRet", "uint"))
    args: list[SyscallArg] | None = field(
        default=None, metadata=jkey("args", "models", model=SyscallArg)
    )


@dataclass(kw_only=True)
class Seccomp(JSONModel):
    default_action: str = field(metadata=jkey("defaultAction", "str"))
    default_errno_ret: int | None = field(default=None, metadata=jkey("defaultErrnoRet", "uint"))
    architectures: list[str] | None = field(default=None, metadata=jkey("architectures", "strlist"))
    flags: list[str] | None = field(default=None, metadata=jkey("flags", "strlist"))
    listener_path: str | None = field(default=None, metadata=jkey("listenerPath", "str"))
    listener_metadata: str | None = field(default=None, metadata=jkey("listenerMetadata", "str"))
    syscalls: list[Syscall] | None = field(
        default=None, metadata=jkey("syscalls", "models", model=Syscall)
    )


@dataclass(kw_only=True)
class IntelRdt(JSONModel):
    clos_id: str | None = field(default=None, metadata=jkey("closID", "str"))
    schemata: list[str] | None = field(default=None, metadata=jkey("schemata", "strlist"))
    l3_cache_schema: str | None = field(default=None, metadata=jkey("l3CacheSchema", "str"))
    mem_bw_schema: str | None = field(default=None, metadata=jkey("memBwSchema", "str"))
    enable_monitoring: bool | None = field(default=None, metadata=jkey("enableMonitoring", "bool"))


@dataclass(kw_only=True)
class Personality(JSONModel):
    domain: str | None = field(default=None, metadata=jkey("domain", "str"))
    flags: list[str] | None = field(default=None, metadata=jkey("flags", "strlist"))


@dataclass(kw_only=True)
class Linux(JSONModel):
    uid_mappings: list[IDMapping] | None = field(
        default=None, metadata=jkey("uidMappings", "models", model=IDMapping)
    )
    gid_mappings: list[IDMapping] | None = field(
        default=None, metadata=jkey("gidMappings", "models", model=IDMapping)
    )
    sysctl: dict[str, str] | None = field(default=None, metadata=jkey("sysctl", "strmap"))
    resources: Resources | None = field(
        default=None, metadata=jkey("resources", "model", model=Resources)
    )
    cgroups_path: str | None = field(default=None, metadata=jkey("cgroupsPath", "str"))
    namespaces: list[Namespace] | None = field(
        default=None, metadata=jkey("namespaces", "models", model=Namespace)
    )
    devices: list[Device] | None = field(
        default=None, metadata=jkey("devices", "models", model=Device)
    )
    net_devices: dict[str, Any] | None = field(default=None, metadata=jkey("netDevices", "object"))
    seccomp: Seccomp | None = field(default=None, metadata=jkey("seccomp", "model", model=Seccomp))
    rootfs_propagation: str | None = field(default=None, metadata=jkey("rootfsPropagation", "str"))
    masked_paths: list[str] | None = field(default=None, metadata=jkey("maskedPaths", "strlist"))
    readonly_paths: list[str] | None = field(
        default=None, metadata=jkey("readonlyPaths", "strlist")
    )
    mount_label: str | None = field(default=None, metadata=jkey("mountLabel", "str"))
    intel_rdt: IntelRdt | None = field(
        default=None, metadata=jkey("intelRdt", "model", model=IntelRdt)
    )
    memory_policy: dict[str, Any] | None = field(
        default=None, metadata=jkey("memoryPolicy", "object")
    )
    personality: Personality | None = field(
        default=None, metadata=jkey("personality", "model", model=Personality)
    )
    time_offsets: dict[str, Any] | None = field(
        default=None, metadata=jkey("timeOffsets", "object")
    )

    def namespace(self, ns_type: str) -> Namespace | None:
        """The entry for `ns_type`, if the container gets (or joins) that namespace."""
        for ns in self.namespaces or []:
            if ns.type == ns_type:
                return ns
        return None

    def _validate(self, where: str) -> None:
        seen: set[str] = set()
        for ns in self.namespaces or []:
            if ns.type in seen:
                raise InvalidDocument(f"{where}.namespaces: {ns.type} is listed twice")
            seen.add(ns.type)


# --- the document ----------------------------------------------------------------------


@dataclass(kw_only=True)
class Spec(JSONModel):
    """A bundle's config.json."""

    oci_version: str = field(default=OCI_VERSION, metadata=jkey("ociVersion", "str", always=True))
    process: Process | None = field(default=None, metadata=jkey("process", "model", model=Process))
    root: Root | None = field(default=None, metadata=jkey("root", "model", model=Root))
    hostname: str | None = field(default=None, metadata=jkey("hostname", "str"))
    domainname: str | None = field(default=None, metadata=jkey("domainname", "str"))
    mounts: list[Mount] | None = field(default=None, metadata=jkey("mounts", "models", model=Mount))
    hooks: Hooks | None = field(default=None, metadata=jkey("hooks", "model", model=Hooks))
    annotations: dict[str, str] | None = field(default=None, metadata=jkey("annotations", "strmap"))
    linux: Linux | None = field(default=None, metadata=jkey("linux", "model", model=Linux))

    @classmethod
    def _what(cls) -> str:
        return "config.json"

    @classmethod
    def parse(cls, raw: bytes | str) -> Self:
        d = load_json(raw, cls._what())
        if isinstance(d, dict) and "ociVersion" not in d:
            raise InvalidDocument("config.json: missing required field 'ociVersion'")
        return cls.from_dict(d)

    def to_json(self, indent: int | str | None = "\t") -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_bytes(self) -> bytes:
        return self.to_json().encode()


@dataclass(kw_only=True)
class State(JSONModel):
    """What `<runtime> state` prints (and what hooks read on stdin)."""

    oci_version: str = field(default=OCI_VERSION, metadata=jkey("ociVersion", "str", always=True))
    id: str = field(metadata=jkey("id", "str"))
    status: str = field(metadata=jkey("status", "str"))
    pid: int | None = field(default=None, metadata=jkey("pid", "uint"))
    bundle: str = field(metadata=jkey("bundle", "str"))
    annotations: dict[str, str] | None = field(default=None, metadata=jkey("annotations", "strmap"))

    @classmethod
    def _what(cls) -> str:
        return "state"

    def _validate(self, where: str) -> None:
        if self.status not in STATUSES:
            raise InvalidDocument(f"{where}.status: unknown status {self.status!r}")

    @classmethod
    def parse(cls, raw: bytes | str) -> Self:
        return cls.from_dict(load_json(raw, cls._what()))

    def to_json(self, indent: int | str | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


# --- defaults --------------------------------------------------------------------------

_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_DEFAULT_MASKED = [
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
]
_DEFAULT_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_spec(
    rootless: bool = False, *, uid: int | None = None, gid: int | None = None
) -> dict[str, Any]:
    """The starting config.json of `<runtime> spec [--rootless]`: `sh` in a minimal sandbox.

    Rootless maps container root to `uid`/`gid` (default: our own ids), bind-mounts /sys
    (sysfs needs a netns owned by the user) and shares the host network namespace.
    """
    nosuid_noexec_nodev = ["nosuid", "noexec", "nodev"]
    devpts_options = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        devpts_options.append("gid=5")
    if rootless:
        sys_mount = {
            "destination": "/sys",
            "type": "none",
            "source": "/sys",
            "options": ["rbind", *nosuid_noexec_nodev, "ro"],
        }
    else:
        sys_mount = {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": [*nosuid_noexec_nodev, "ro"],
        }
    mounts: list[dict[str, Any]] = [
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
            "options": devpts_options,
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": [*nosuid_noexec_nodev, "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": list(nosuid_noexec_nodev),
        },
        sys_mount,
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [*nosuid_noexec_nodev, "relatime", "ro"],
        },
    ]
    namespaces = ["pid", "network", "ipc", "uts", "mount"]
    linux: dict[str, Any] = {}
    if rootless:
        namespaces = [ns for ns in namespaces if ns != "network"] + ["user"]
        host_uid = os.getuid() if uid is None else uid
        host_gid = os.getgid() if gid is None else gid
        linux["uidMappings"] = [{"containerID": 0, "hostID": host_uid, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": host_gid, "size": 1}]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    linux["namespaces"] = [{"type": ns} for ns in namespaces]
    linux["maskedPaths"] = list(_DEFAULT_MASKED)
    linux["readonlyPaths"] = list(_DEFAULT_READONLY)
    return {
        "ociVersion": OCI_VERSION,
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
                name: list(_DEFAULT_CAPS)
                for name in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": mounts,
        "linux": linux,
    }

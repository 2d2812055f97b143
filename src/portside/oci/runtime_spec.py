"""The OCI runtime-spec 1.3 bundle `config.json` and the runtime `state`, as typed dataclasses.

Every object keeps the keys it does not know in `extra`, so a config written by another
engine (or a newer spec) survives a read-modify-write through us unchanged. The runtime
imports this on every container start: stdlib only, no schema validation here.
"""

from __future__ import annotations

import json
import os
from typing import Any, Self

from portside.errors import InvalidDocument
from portside.oci._json import JSONModel, jfield, load_json

__all__ = [
    "CPU",
    "NAMESPACE_TYPES",
    "OCI_VERSION",
    "RUNTIME_STATUSES",
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
    "InterfacePriority",
    "Linux",
    "Memory",
    "MemoryPolicy",
    "Mount",
    "Namespace",
    "NetDevice",
    "Network",
    "POSIXRlimit",
    "Personality",
    "Pids",
    "Process",
    "Rdma",
    "Resources",
    "Root",
    "Scheduler",
    "Seccomp",
    "Spec",
    "State",
    "Syscall",
    "SyscallArg",
    "ThrottleDevice",
    "TimeOffset",
    "TimeOffsets",
    "User",
    "WeightDevice",
    "default_spec",
]

OCI_VERSION = "1.3.0"
NAMESPACE_TYPES = frozenset({"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"})
STATUSES = ("creating", "created", "running", "stopped")
# runc and crun also report "paused" (not in the spec's enum); we accept what they print.
RUNTIME_STATUSES = (*STATUSES, "paused")

# --- process ---------------------------------------------------------------------------


class ConsoleSize(JSONModel):
    height: int = jfield("height", "uint")
    width: int = jfield("width", "uint")


class User(JSONModel):
    uid: int = jfield("uid", "uint", default=0)
    gid: int = jfield("gid", "uint", default=0)
    umask: int | None = jfield("umask", "uint", default=None)
    additional_gids: list[int] | None = jfield("additionalGids", "uintlist", default=None)
    username: str | None = jfield("username", "str", default=None)


class Capabilities(JSONModel):
    bounding: list[str] | None = jfield("bounding", "strlist", default=None)
    effective: list[str] | None = jfield("effective", "strlist", default=None)
    inheritable: list[str] | None = jfield("inheritable", "strlist", default=None)
    permitted: list[str] | None = jfield("permitted", "strlist", default=None)
    ambient: list[str] | None = jfield("ambient", "strlist", default=None)


class POSIXRlimit(JSONModel):
    type: str = jfield("type", "str")
    hard: int = jfield("hard", "uint")
    soft: int = jfield("soft", "uint")


class IOPriority(JSONModel):
    class_: str = jfield("class", "str")
    priority: int | None = jfield("priority", "int", default=None)


class Scheduler(JSONModel):
    policy: str = jfield("policy", "str")
    nice: int | None = jfield("nice", "int", default=None)
    priority: int | None = jfield("priority", "int", default=None)
    flags: list[str] | None = jfield("flags", "strlist", default=None)
    runtime: int | None = jfield("runtime", "uint", default=None)
    deadline: int | None = jfield("deadline", "uint", default=None)
    period: int | None = jfield("period", "uint", default=None)


class CPUAffinity(JSONModel):
    initial: str | None = jfield("initial", "str", default=None)
    final: str | None = jfield("final", "str", default=None)


class Process(JSONModel):
    terminal: bool | None = jfield("terminal", "bool", default=None)
    console_size: ConsoleSize | None = jfield(
        "consoleSize", "model", model=ConsoleSize, default=None
    )
    user: User = jfield("user", "model", model=User, default_factory=User)
    args: list[str] | None = jfield("args", "strlist", default=None)
    command_line: str | None = jfield("commandLine", "str", default=None)
    env: list[str] | None = jfield("env", "strlist", default=None)
    cwd: str = jfield("cwd", "str")
    capabilities: Capabilities | None = jfield(
        "capabilities", "model", model=Capabilities, default=None
    )
    rlimits: list[POSIXRlimit] | None = jfield("rlimits", "models", model=POSIXRlimit, default=None)
    no_new_privileges: bool | None = jfield("noNewPrivileges", "bool", default=None)
    apparmor_profile: str | None = jfield("apparmorProfile", "str", default=None)
    oom_score_adj: int | None = jfield("oomScoreAdj", "int", default=None)
    selinux_label: str | None = jfield("selinuxLabel", "str", default=None)
    io_priority: IOPriority | None = jfield("ioPriority", "model", model=IOPriority, default=None)
    scheduler: Scheduler | None = jfield("scheduler", "model", model=Scheduler, default=None)
    exec_cpu_affinity: CPUAffinity | None = jfield(
        "execCPUAffinity", "model", model=CPUAffinity, default=None
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


class Root(JSONModel):
    path: str = jfield("path", "str")
    readonly: bool | None = jfield("readonly", "bool", default=None)


class IDMapping(JSONModel):
    container_id: int = jfield("containerID", "uint")
    host_id: int = jfield("hostID", "uint")
    size: int = jfield("size", "uint")


class Mount(JSONModel):
    destination: str = jfield("destination", "str")
    type: str | None = jfield("type", "str", default=None)
    source: str | None = jfield("source", "str", default=None)
    options: list[str] | None = jfield("options", "strlist", default=None)
    uid_mappings: list[IDMapping] | None = jfield(
        "uidMappings", "models", model=IDMapping, default=None
    )
    gid_mappings: list[IDMapping] | None = jfield(
        "gidMappings", "models", model=IDMapping, default=None
    )


class Hook(JSONModel):
    path: str = jfield("path", "str")
    args: list[str] | None = jfield("args", "strlist", default=None)
    env: list[str] | None = jfield("env", "strlist", default=None)
    timeout: int | None = jfield("timeout", "int", default=None)

    def _validate(self, where: str) -> None:
        if self.timeout is not None and self.timeout < 1:
            raise InvalidDocument(f"{where}.timeout: must be at least 1, got {self.timeout}")


class Hooks(JSONModel):
    prestart: list[Hook] | None = jfield("prestart", "models", model=Hook, default=None)
    create_runtime: list[Hook] | None = jfield("createRuntime", "models", model=Hook, default=None)
    create_container: list[Hook] | None = jfield(
        "createContainer", "models", model=Hook, default=None
    )
    start_container: list[Hook] | None = jfield(
        "startContainer", "models", model=Hook, default=None
    )
    poststart: list[Hook] | None = jfield("poststart", "models", model=Hook, default=None)
    poststop: list[Hook] | None = jfield("poststop", "models", model=Hook, default=None)


# --- linux -----------------------------------------------------------------------------


class Namespace(JSONModel):
    type: str = jfield("type", "str")
    path: str | None = jfield("path", "str", default=None)

    def _validate(self, where: str) -> None:
        if self.type not in NAMESPACE_TYPES:
            raise InvalidDocument(f"{where}.type: unknown namespace type {self.type!r}")


class Device(JSONModel):
    type: str = jfield("type", "str")
    path: str = jfield("path", "str")
    major: int | None = jfield("major", "int", default=None)
    minor: int | None = jfield("minor", "int", default=None)
    file_mode: int | None = jfield("fileMode", "uint", default=None)
    uid: int | None = jfield("uid", "uint", default=None)
    gid: int | None = jfield("gid", "uint", default=None)


class DeviceCgroup(JSONModel):
    allow: bool = jfield("allow", "bool")
    type: str | None = jfield("type", "str", default=None)
    major: int | None = jfield("major", "int", default=None)
    minor: int | None = jfield("minor", "int", default=None)
    access: str | None = jfield("access", "str", default=None)


class Memory(JSONModel):
    limit: int | None = jfield("limit", "int", default=None)
    reservation: int | None = jfield("reservation", "int", default=None)
    swap: int | None = jfield("swap", "int", default=None)
    kernel: int | None = jfield("kernel", "int", default=None)
    kernel_tcp: int | None = jfield("kernelTCP", "int", default=None)
    swappiness: int | None = jfield("swappiness", "uint", default=None)
    disable_oom_killer: bool | None = jfield("disableOOMKiller", "bool", default=None)
    use_hierarchy: bool | None = jfield("useHierarchy", "bool", default=None)
    check_before_update: bool | None = jfield("checkBeforeUpdate", "bool", default=None)


class CPU(JSONModel):
    shares: int | None = jfield("shares", "uint", default=None)
    quota: int | None = jfield("quota", "int", default=None)
    burst: int | None = jfield("burst", "uint", default=None)
    period: int | None = jfield("period", "uint", default=None)
    realtime_runtime: int | None = jfield("realtimeRuntime", "int", default=None)
    realtime_period: int | None = jfield("realtimePeriod", "uint", default=None)
    cpus: str | None = jfield("cpus", "str", default=None)
    mems: str | None = jfield("mems", "str", default=None)
    idle: int | None = jfield("idle", "int", default=None)


class Pids(JSONModel):
    limit: int = jfield("limit", "int")


class WeightDevice(JSONModel):
    major: int = jfield("major", "int")
    minor: int = jfield("minor", "int")
    weight: int | None = jfield("weight", "uint", default=None)
    leaf_weight: int | None = jfield("leafWeight", "uint", default=None)


class ThrottleDevice(JSONModel):
    major: int = jfield("major", "int")
    minor: int = jfield("minor", "int")
    rate: int | None = jfield("rate", "uint", default=None)


class BlockIO(JSONModel):
    weight: int | None = jfield("weight", "uint", default=None)
    leaf_weight: int | None = jfield("leafWeight", "uint", default=None)
    weight_device: list[WeightDevice] | None = jfield(
        "weightDevice", "models", model=WeightDevice, default=None
    )
    throttle_read_bps_device: list[ThrottleDevice] | None = jfield(
        "throttleReadBpsDevice", "models", model=ThrottleDevice, default=None
    )
    throttle_write_bps_device: list[ThrottleDevice] | None = jfield(
        "throttleWriteBpsDevice", "models", model=ThrottleDevice, default=None
    )
    throttle_read_iops_device: list[ThrottleDevice] | None = jfield(
        "throttleReadIOPSDevice", "models", model=ThrottleDevice, default=None
    )
    throttle_write_iops_device: list[ThrottleDevice] | None = jfield(
        "throttleWriteIOPSDevice", "models", model=ThrottleDevice, default=None
    )


class HugepageLimit(JSONModel):
    page_size: str = jfield("pageSize", "str")
    limit: int = jfield("limit", "uint")


class InterfacePriority(JSONModel):
    name: str = jfield("name", "str")
    priority: int = jfield("priority", "uint")


class Network(JSONModel):
    class_id: int | None = jfield("classID", "uint", default=None)
    priorities: list[InterfacePriority] | None = jfield(
        "priorities", "models", model=InterfacePriority, default=None
    )


class Rdma(JSONModel):
    hca_handles: int | None = jfield("hcaHandles", "uint", default=None)
    hca_objects: int | None = jfield("hcaObjects", "uint", default=None)


class Resources(JSONModel):
    devices: list[DeviceCgroup] | None = jfield(
        "devices", "models", model=DeviceCgroup, default=None
    )
    memory: Memory | None = jfield("memory", "model", model=Memory, default=None)
    cpu: CPU | None = jfield("cpu", "model", model=CPU, default=None)
    pids: Pids | None = jfield("pids", "model", model=Pids, default=None)
    block_io: BlockIO | None = jfield("blockIO", "model", model=BlockIO, default=None)
    hugepage_limits: list[HugepageLimit] | None = jfield(
        "hugepageLimits", "models", model=HugepageLimit, default=None
    )
    network: Network | None = jfield("network", "model", model=Network, default=None)
    rdma: dict[str, Rdma] | None = jfield("rdma", "modelmap", model=Rdma, default=None)
    unified: dict[str, str] | None = jfield("unified", "strmap", default=None)


class SyscallArg(JSONModel):
    index: int = jfield("index", "uint")
    value: int = jfield("value", "uint")
    value_two: int | None = jfield("valueTwo", "uint", default=None)
    op: str = jfield("op", "str")


class Syscall(JSONModel):
    names: list[str] = jfield("names", "strlist")
    action: str = jfield("action", "str")
    errno_ret: int | None = jfield("errnoRet", "uint", default=None)
    args: list[SyscallArg] | None = jfield("args", "models", model=SyscallArg, default=None)


class Seccomp(JSONModel):
    default_action: str = jfield("defaultAction", "str")
    default_errno_ret: int | None = jfield("defaultErrnoRet", "uint", default=None)
    architectures: list[str] | None = jfield("architectures", "strlist", default=None)
    flags: list[str] | None = jfield("flags", "strlist", default=None)
    listener_path: str | None = jfield("listenerPath", "str", default=None)
    listener_metadata: str | None = jfield("listenerMetadata", "str", default=None)
    syscalls: list[Syscall] | None = jfield("syscalls", "models", model=Syscall, default=None)


class IntelRdt(JSONModel):
    clos_id: str | None = jfield("closID", "str", default=None)
    schemata: list[str] | None = jfield("schemata", "strlist", default=None)
    l3_cache_schema: str | None = jfield("l3CacheSchema", "str", default=None)
    mem_bw_schema: str | None = jfield("memBwSchema", "str", default=None)
    enable_monitoring: bool | None = jfield("enableMonitoring", "bool", default=None)


class Personality(JSONModel):
    domain: str | None = jfield("domain", "str", default=None)
    flags: list[str] | None = jfield("flags", "strlist", default=None)


class NetDevice(JSONModel):
    name: str | None = jfield("name", "str", default=None)


class MemoryPolicy(JSONModel):
    mode: str | None = jfield("mode", "str", default=None)
    nodes: str | None = jfield("nodes", "str", default=None)
    flags: list[str] | None = jfield("flags", "strlist", default=None)


class TimeOffset(JSONModel):
    secs: int | None = jfield("secs", "int", default=None)
    nanosecs: int | None = jfield("nanosecs", "uint", default=None)


class TimeOffsets(JSONModel):
    boottime: TimeOffset | None = jfield("boottime", "model", model=TimeOffset, default=None)
    monotonic: TimeOffset | None = jfield("monotonic", "model", model=TimeOffset, default=None)


class Linux(JSONModel):
    uid_mappings: list[IDMapping] | None = jfield(
        "uidMappings", "models", model=IDMapping, default=None
    )
    gid_mappings: list[IDMapping] | None = jfield(
        "gidMappings", "models", model=IDMapping, default=None
    )
    sysctl: dict[str, str] | None = jfield("sysctl", "strmap", default=None)
    resources: Resources | None = jfield("resources", "model", model=Resources, default=None)
    cgroups_path: str | None = jfield("cgroupsPath", "str", default=None)
    namespaces: list[Namespace] | None = jfield(
        "namespaces", "models", model=Namespace, default=None
    )
    devices: list[Device] | None = jfield("devices", "models", model=Device, default=None)
    net_devices: dict[str, NetDevice] | None = jfield(
        "netDevices", "modelmap", model=NetDevice, default=None
    )
    seccomp: Seccomp | None = jfield("seccomp", "model", model=Seccomp, default=None)
    rootfs_propagation: str | None = jfield("rootfsPropagation", "str", default=None)
    masked_paths: list[str] | None = jfield("maskedPaths", "strlist", default=None)
    readonly_paths: list[str] | None = jfield("readonlyPaths", "strlist", default=None)
    mount_label: str | None = jfield("mountLabel", "str", default=None)
    intel_rdt: IntelRdt | None = jfield("intelRdt", "model", model=IntelRdt, default=None)
    memory_policy: MemoryPolicy | None = jfield(
        "memoryPolicy", "model", model=MemoryPolicy, default=None
    )
    personality: Personality | None = jfield(
        "personality", "model", model=Personality, default=None
    )
    time_offsets: TimeOffsets | None = jfield(
        "timeOffsets", "model", model=TimeOffsets, default=None
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


class Spec(JSONModel):
    """A bundle's config.json."""

    oci_version: str = jfield("ociVersion", "str", always=True, default=OCI_VERSION)
    process: Process | None = jfield("process", "model", model=Process, default=None)
    root: Root | None = jfield("root", "model", model=Root, default=None)
    hostname: str | None = jfield("hostname", "str", default=None)
    domainname: str | None = jfield("domainname", "str", default=None)
    mounts: list[Mount] | None = jfield("mounts", "models", model=Mount, default=None)
    hooks: Hooks | None = jfield("hooks", "model", model=Hooks, default=None)
    annotations: dict[str, str] | None = jfield("annotations", "strmap", default=None)
    linux: Linux | None = jfield("linux", "model", model=Linux, default=None)

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


class State(JSONModel):
    """What `<runtime> state` prints (and what hooks read on stdin)."""

    oci_version: str = jfield("ociVersion", "str", always=True, default=OCI_VERSION)
    id: str = jfield("id", "str")
    status: str = jfield("status", "str")
    pid: int | None = jfield("pid", "uint", default=None)
    bundle: str = jfield("bundle", "str")
    annotations: dict[str, str] | None = jfield("annotations", "strmap", default=None)

    @classmethod
    def _what(cls) -> str:
        return "state"

    def _validate(self, where: str) -> None:
        if self.status not in RUNTIME_STATUSES:
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

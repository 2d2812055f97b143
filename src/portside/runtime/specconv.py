"""Turn a bundle's config.json into the runtime's internal config.

Everything that can be wrong with a config is found here, in the runtime
process, before any fork, mount or cgroup: a bad config must leave nothing
behind, and one line names the field at fault.
"""

from __future__ import annotations

import posix

from portside.errors import InvalidDocument
from portside.linux import libc, pathops
from portside.runtime import fastjson

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any

# mount option -> (set?, flag); runc's table, extended with the spec's recursive variants.
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, 0),
    "async": (False, libc.MS_SYNCHRONOUS),
    "atime": (False, libc.MS_NOATIME),
    "bind": (True, libc.MS_BIND),
    "defaults": (True, 0),
    "dev": (False, libc.MS_NODEV),
    "diratime": (False, libc.MS_NODIRATIME),
    "dirsync": (True, libc.MS_DIRSYNC),
    "exec": (False, libc.MS_NOEXEC),
    "iversion": (True, 0x800000),
    "lazytime": (True, libc.MS_LAZYTIME),
    "loud": (False, libc.MS_SILENT),
    "mand": (True, libc.MS_MANDLOCK),
    "noatime": (True, libc.MS_NOATIME),
    "nodev": (True, libc.MS_NODEV),
    "nodiratime": (True, libc.MS_NODIRATIME),
    "noexec": (True, libc.MS_NOEXEC),
    "noiversion": (False, 0x800000),
    "nolazytime": (False, libc.MS_LAZYTIME),
    "nomand": (False, libc.MS_MANDLOCK),
    "norelatime": (False, libc.MS_RELATIME),
    "nostrictatime": (False, libc.MS_STRICTATIME),
    "nosuid": (True, libc.MS_NOSUID),
    "nosymfollow": (True, libc.MS_NOSYMFOLLOW),
    "rbind": (True, libc.MS_BIND | libc.MS_REC),
    "relatime": (True, libc.MS_RELATIME),
    "remount": (True, libc.MS_REMOUNT),
    "ro": (True, libc.MS_RDONLY),
    "rw": (False, libc.MS_RDONLY),
    "silent": (True, libc.MS_SILENT),
    "strictatime": (True, libc.MS_STRICTATIME),
    "suid": (False, libc.MS_NOSUID),
    "sync": (True, libc.MS_SYNCHRONOUS),
}

PROPAGATION: dict[str, int] = {
    "private": libc.MS_PRIVATE,
    "rprivate": libc.MS_PRIVATE | libc.MS_REC,
    "shared": libc.MS_SHARED,
    "rshared": libc.MS_SHARED | libc.MS_REC,
    "slave": libc.MS_SLAVE,
    "rslave": libc.MS_SLAVE | libc.MS_REC,
    "unbindable": libc.MS_UNBINDABLE,
    "runbindable": libc.MS_UNBINDABLE | libc.MS_REC,
}

# Options only meaningful to other runtimes or to the engine: accepted and ignored.
IGNORED_OPTIONS = frozenset({"tmpcopyup", "notmpcopyup", "copy-symlink", "z", "Z", "U"})

RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

CAPABILITIES: dict[str, int] = {
    name: i
    for i, name in enumerate(
        [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_DAC_READ_SEARCH",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETPCAP",
            "CAP_LINUX_IMMUTABLE",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST",
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_IPC_LOCK",
            "CAP_IPC_OWNER",
            "CAP_SYS_MODULE",
            "CAP_SYS_RAWIO",
            "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE",
            "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN",
            "CAP_SYS_BOOT",
            "CAP_SYS_NICE",
            "CAP_SYS_RESOURCE",
            "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG",
            "CAP_MKNOD",
            "CAP_LEASE",
            "CAP_AUDIT_WRITE",
            "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP",
            "CAP_MAC_OVERRIDE",
            "CAP_MAC_ADMIN",
            "CAP_SYSLOG",
            "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND",
            "CAP_AUDIT_READ",
            "CAP_PERFMON",
            "CAP_BPF",
            "CAP_CHECKPOINT_RESTORE",
        ]
    )
}
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

NAMESPACE_ORDER = ("user", "ipc", "uts", "network", "pid", "mount", "cgroup", "time")

_PROC_NS = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}

PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}


class Mount:
    """One entry of `mounts`, with its options split into flags, propagation and data."""

    __slots__ = ("data", "destination", "flags", "propagation", "source", "type")

    def __init__(
        self,
        destination: str,
        type_: str,
        source: str,
        flags: int,
        propagation: list[int],
        data: str,
    ) -> None:
        self.destination = destination
        self.type = type_
        self.source = source
        self.flags = flags
        self.propagation = propagation
        self.data = data

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & libc.MS_BIND)


class Process:
    """The process part of a spec (also what `exec -p` supplies)."""

    __slots__ = (
        "additional_gids",
        "apparmor",
        "args",
        "caps",
        "console_size",
        "cwd",
        "env",
        "gid",
        "no_new_privileges",
        "oom_score_adj",
        "rlimits",
        "selinux_label",
        "terminal",
        "uid",
        "umask",
    )

    def __init__(self) -> None:
        self.args: list[str] = []
        self.env: list[str] = []
        self.cwd = "/"
        self.terminal = False
        self.uid = 0
        self.gid = 0
        self.additional_gids: list[int] = []
        self.umask: int | None = None
        self.caps: dict[str, int] | None = None
        self.no_new_privileges = False
        self.rlimits: list[tuple[int, int, int]] = []
        self.oom_score_adj: int | None = None
        self.apparmor = ""
        self.selinux_label = ""
        self.console_size: tuple[int, int] | None = None


class Config:
    """Everything the init needs, checked; built once in the parent, inherited by fork."""

    def __init__(self) -> None:
        self.bundle = ""
        self.rootfs = ""
        self.readonly_root = False
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.process = Process()
        self.namespaces: list[tuple[str, str | None]] = []
        self.uid_mappings: list[tuple[int, int, int]] = []
        self.gid_mappings: list[tuple[int, int, int]] = []
        self.mounts: list[Mount] = []
        self.masked_paths: list[str] = []
        self.readonly_paths: list[str] = []
        self.devices: list[dict[str, Any]] = []
        self.sysctl: dict[str, str] = {}
        self.rootfs_propagation = libc.MS_SLAVE | libc.MS_REC
        self.hooks: dict[str, list[dict[str, Any]]] = {}
        self.resources: dict[str, Any] = {}
        self.cgroups_path: str | None = None
        self.seccomp: dict[str, Any] | None = None
        self.personality: int | None = None
        self.annotations: dict[str, str] = {}
        self.time_offsets: dict[str, dict[str, int]] = {}
        self.mount_label = ""
        self.spec: dict[str, Any] = {}
        self.warnings: list[str] = []  # logged by the runtime, as runc warns

    def has_new(self, ns: str) -> bool:
        return any(t == ns and p is None for t, p in self.namespaces)

    def has(self, ns: str) -> bool:
        return any(t == ns for t, _ in self.namespaces)

    @property
    def setup_dev(self) -> bool:
        """/dev is ours to populate unless the spec bind-mounts a /dev from elsewhere."""
        return not any(m.destination == "/dev" and m.is_bind for m in self.mounts)


def _bad(msg: str) -> InvalidDocument:
    return InvalidDocument(msg)


def load_spec(bundle: str) -> dict[str, Any]:
    path = pathops.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise _bad(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise _bad(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
    try:
        spec = fastjson.loads(raw)
    except ValueError as e:
        raise _bad(f"invalid JSON in {path}: {e}") from None
    if not isinstance(spec, dict):
        raise _bad(f"{path}: the config must be a JSON object")
    return spec


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{what} must be an integer, got {fastjson.dumps(value)}")
    return value


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{what} must be a list of strings")
    return list(value)


def parse_mount_options(options: list[str]) -> tuple[int, list[int], str]:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for opt in options:
        known = MOUNT_FLAGS.get(opt)
        if known is not None:
            setting, flag = known
            if setting:
                flags |= flag
            else:
                flags &= ~flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in IGNORED_OPTIONS:
            continue
        elif opt in ("idmap", "ridmap"):
            raise _bad(f"mount option {opt!r} is not supported by portside-runtime")
        elif opt.startswith("r") and opt[1:] in MOUNT_FLAGS and opt[1:] not in ("bind",):
            # recursive mount attributes (rro, rnosuid, ...): applied as plain flags,
            # which is what they amount to for a single bind mount.
            setting, flag = MOUNT_FLAGS[opt[1:]]
            flags = flags | flag if setting else flags & ~flag
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


def _caps(process: dict[str, Any], warnings: list[str]) -> dict[str, int] | None:
    caps = process.get("capabilities")
    if caps is None:
        return None
    if not isinstance(caps, dict):
        raise _bad("process.capabilities must be an object")
    out: dict[str, int] = {}
    unknown: list[str] = []
    for kind in CAP_SETS:
        mask = 0
        for name in _str_list(caps.get(kind), f"process.capabilities.{kind}"):
            bit = CAPABILITIES.get(name)
            if bit is None:
                if name not in unknown:
                    unknown.append(name)
                continue
            mask |= 1 << bit
        out[kind] = mask
    if unknown:
        # runc's behaviour: a capability this kernel or runtime does not know is skipped
        warnings.append(f"ignoring unknown or unavailable capabilities: [{' '.join(unknown)}]")
    return out


def convert_process(
    process: Any, *, where: str = "process", warnings: list[str] | None = None
) -> Process:
    if not isinstance(process, dict):
        raise _bad(f"{where} must be an object")
    p = Process()
    p.args = _str_list(process.get("args"), f"{where}.args")
    if not p.args:
        raise _bad("args must not be empty")
    p.env = _str_list(process.get("env"), f"{where}.env")
    p.cwd = process.get("cwd") or "/"
    if not isinstance(p.cwd, str) or not p.cwd.startswith("/"):
        raise _bad(f"cwd property must be an absolute path, got {p.cwd!r}")
    p.terminal = bool(process.get("terminal", False))
    user = process.get("user") or {}
    if not isinstance(user, dict):
        raise _bad(f"{where}.user must be an object")
    if user.get("username"):
        raise _bad("process.user.username is Windows-only; give uid and gid")
    p.uid = _int(user.get("uid", 0), f"{where}.user.uid")
    p.gid = _int(user.get("gid", 0), f"{where}.user.gid")
    p.additional_gids = [
        _int(g, f"{where}.user.additionalGids") for g in user.get("additionalGids") or []
    ]
    if user.get("umask") is not None:
        p.umask = _int(user["umask"], f"{where}.user.umask")
    p.caps = _caps(process, warnings if warnings is not None else [])
    p.no_new_privileges = bool(process.get("noNewPrivileges", False))
    for rl in process.get("rlimits") or []:
        if not isinstance(rl, dict):
            raise _bad(f"{where}.rlimits entries must be objects")
        kind = rl.get("type")
        if kind not in RLIMITS:
            raise _bad(f"rlimit {kind!r} is not known")
        soft = _int(rl.get("soft", 0), f"rlimit {kind} soft")
        hard = _int(rl.get("hard", 0), f"rlimit {kind} hard")
        p.rlimits.append((RLIMITS[kind], soft, hard))
    if process.get("oomScoreAdj") is not None:
        p.oom_score_adj = _int(process["oomScoreAdj"], f"{where}.oomScoreAdj")
        if not -1000 <= p.oom_score_adj <= 1000:
            raise _bad(f"oomScoreAdj {p.oom_score_adj} is outside -1000..1000")
    p.apparmor = process.get("apparmorProfile") or ""
    p.selinux_label = process.get("selinuxLabel") or ""
    size = process.get("consoleSize")
    if isinstance(size, dict):
        p.console_size = (
            _int(size.get("height", 0), "consoleSize.height"),
            _int(size.get("width", 0), "consoleSize.width"),
        )
    return p


def _mappings(value: Any, what: str) -> list[tuple[int, int, int]]:
    out = []
    for m in value or []:
        if not isinstance(m, dict):
            raise _bad(f"{what} entries must be objects")
        out.append(
            (
                _int(m.get("containerID"), f"{what}.containerID"),
                _int(m.get("hostID"), f"{what}.hostID"),
                _int(m.get("size"), f"{what}.size"),
            )
        )
    return out


def convert(spec: dict[str, Any], bundle: str) -> Config:
    """Validate `spec` against what this runtime and this kernel can do."""
    cfg = Config()
    cfg.spec = spec
    cfg.bundle = pathops.abspath(bundle)
    if not isinstance(spec.get("ociVersion", ""), str):
        raise _bad("ociVersion must be a string")
    root = spec.get("root")
    if not isinstance(root, dict) or not root.get("path"):
        raise _bad("root must be specified")
    rootfs = root["path"]
    if not pathops.isabs(rootfs):
        rootfs = pathops.join(cfg.bundle, rootfs)
    try:
        st = posix.stat(rootfs)
    except OSError as e:
        raise _bad(f"invalid rootfs: stat {rootfs}: {(e.strerror or '').lower()}") from None
    import _stat  # the C module: stat.py only adds names to it

    if not _stat.S_ISDIR(st.st_mode):
        raise _bad(f"invalid rootfs: {rootfs} is not a directory")
    cfg.rootfs = pathops.resolve_existing(rootfs)  # a directory: stat'ed above
    cfg.readonly_root = bool(root.get("readonly", False))
    if "process" not in spec or spec["process"] is None:
        raise _bad("process must be specified")
    cfg.process = convert_process(spec["process"], warnings=cfg.warnings)
    cfg.hostname = spec.get("hostname")
    cfg.domainname = spec.get("domainname")
    annotations = spec.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise _bad("annotations must be an object")
    cfg.annotations = annotations

    linux = spec.get("linux") or {}
    if not isinstance(linux, dict):
        raise _bad("linux must be an object")
    seen: set[str] = set()
    for ns in linux.get("namespaces") or []:
        if not isinstance(ns, dict):
            raise _bad("linux.namespaces entries must be objects")
        kind = ns.get("type")
        path = ns.get("path") or None
        if kind not in libc.NAMESPACE_FLAGS:
            raise _bad(f'namespace {{"{kind}" "{path or ""}"}} does not exist')
        if kind in seen:
            raise _bad(f"malformed spec file: duplicated ns {kind!r}")
        seen.add(kind)
        if not pathops.exists(f"/proc/self/ns/{_PROC_NS[kind]}"):
            raise _bad(f"namespace {kind!r} is not supported by this kernel")
        if path is not None and not pathops.exists(path):
            raise _bad(f"namespace {kind} path {path}: no such file or directory")
        cfg.namespaces.append((kind, path))
    cfg.namespaces.sort(key=lambda n: NAMESPACE_ORDER.index(n[0]))
    if cfg.hostname and not cfg.has("uts"):
        raise _bad("unable to set hostname without a private UTS namespace")
    if cfg.domainname and not cfg.has("uts"):
        raise _bad("unable to set domainname without a private UTS namespace")
    cfg.uid_mappings = _mappings(linux.get("uidMappings"), "linux.uidMappings")
    cfg.gid_mappings = _mappings(linux.get("gidMappings"), "linux.gidMappings")
    if cfg.has_new("user"):
        if not cfg.uid_mappings or not cfg.gid_mappings:
            raise _bad("user namespaces enabled, but no uid or gid mappings found")
    elif (cfg.uid_mappings or cfg.gid_mappings) and not cfg.has("user"):
        raise _bad("user namespaces not enabled in config, but uid or gid mappings given")
    if not cfg.has("mount"):
        raise _bad("portside-runtime needs a mount namespace: add one to linux.namespaces")

    for i, m in enumerate(spec.get("mounts") or []):
        if not isinstance(m, dict):
            raise _bad(f"mounts[{i}] must be an object")
        dest = m.get("destination")
        if not isinstance(dest, str) or not dest:
            raise _bad(f"mounts[{i}]: destination must be given")
        if not dest.startswith("/"):
            raise _bad(f"mount destination {dest} is not absolute")
        options = _str_list(m.get("options"), f"mounts[{i}].options")
        flags, prop, data = parse_mount_options(options)
        type_ = m.get("type") or ("bind" if flags & libc.MS_BIND else "")
        if type_ == "bind":
            flags |= libc.MS_BIND
        source = m.get("source") or type_ or "none"
        if flags & libc.MS_BIND:
            if not pathops.isabs(source):
                source = pathops.join(cfg.bundle, source)
            if not pathops.exists(source):
                raise _bad(
                    f'error mounting "{source}" to rootfs at "{dest}": '
                    f"stat {source}: no such file or directory"
                )
        elif not type_:
            raise _bad(f"mount {dest}: no type given")
        cfg.mounts.append(Mount(pathops.normpath(dest), type_, source, flags, prop, data))

    cfg.masked_paths = _str_list(linux.get("maskedPaths"), "linux.maskedPaths")
    cfg.readonly_paths = _str_list(linux.get("readonlyPaths"), "linux.readonlyPaths")
    for d in linux.get("devices") or []:
        if not isinstance(d, dict) or not isinstance(d.get("path"), str):
            raise _bad("linux.devices entries need a path")
        if d.get("type") not in ("c", "b", "u", "p"):
            raise _bad(f"device {d.get('path')}: type must be c, b, u or p")
        if d["type"] != "p":
            _int(d.get("major"), f"device {d['path']} major")
            _int(d.get("minor"), f"device {d['path']} minor")
        cfg.devices.append(d)
    sysctl = linux.get("sysctl") or {}
    for key, value in sysctl.items():
        _check_sysctl(cfg, key)
        cfg.sysctl[key] = str(value)
    root_prop = linux.get("rootfsPropagation")
    if root_prop:
        if root_prop not in PROPAGATION:
            raise _bad(f"rootfsPropagation {root_prop!r} is not a propagation mode")
        cfg.rootfs_propagation = PROPAGATION[root_prop]
    hooks = spec.get("hooks") or {}
    for kind, entries in hooks.items():
        if kind not in (
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ):
            raise _bad(f"unknown hook kind {kind!r}")
        checked = []
        for h in entries or []:
            if not isinstance(h, dict) or not isinstance(h.get("path"), str):
                raise _bad(f"hooks.{kind}: each hook needs a path")
            if not pathops.isabs(h["path"]):
                raise _bad(f"hooks.{kind}: path {h['path']} is not absolute")
            if h.get("timeout") is not None and _int(h["timeout"], "hook timeout") <= 0:
                raise _bad(f"hooks.{kind}: timeout must be positive")
            checked.append(h)
        cfg.hooks[kind] = checked
    resources = linux.get("resources") or {}
    if not isinstance(resources, dict):
        raise _bad("linux.resources must be an object")
    cfg.resources = resources
    cfg.cgroups_path = linux.get("cgroupsPath") or None
    cfg.seccomp = linux.get("seccomp") or None
    pers = linux.get("personality")
    if pers:
        domain = pers.get("domain")
        if domain not in PERSONALITIES:
            raise _bad(f"personality domain {domain!r} is not supported")
        cfg.personality = PERSONALITIES[domain]
    offsets = linux.get("timeOffsets") or {}
    if offsets:
        if not cfg.has_new("time"):
            raise _bad("timeOffsets given, but no new time namespace")
        for clock in offsets:
            if clock not in ("boottime", "monotonic"):
                raise _bad(f"timeOffsets: unknown clock {clock!r}")
        cfg.time_offsets = offsets
    cfg.mount_label = linux.get("mountLabel") or ""
    if cfg.process.apparmor and not pathops.isdir("/sys/kernel/security/apparmor"):
        raise _bad(
            f"apparmor profile {cfg.process.apparmor!r} requested, "
            "but AppArmor is not enabled on this kernel"
        )
    if (cfg.process.selinux_label or cfg.mount_label) and not pathops.isdir("/sys/fs/selinux"):
        raise _bad("SELinux label requested, but SELinux is not enabled on this kernel")
    if linux.get("intelRdt"):
        raise _bad("linux.intelRdt is not supported by portside-runtime")
    return cfg


_NS_SYSCTLS = {
    "kernel.msgmax": "ipc",
    "kernel.msgmnb": "ipc",
    "kernel.msgmni": "ipc",
    "kernel.sem": "ipc",
    "kernel.shmall": "ipc",
    "kernel.shmmax": "ipc",
    "kernel.shmmni": "ipc",
    "kernel.shm_rmid_forced": "ipc",
    "kernel.hostname": "uts",
    "kernel.domainname": "uts",
}


def _check_sysctl(cfg: Config, key: str) -> None:
    """Only namespaced sysctls may be set, and only when that namespace is private."""
    ns = _NS_SYSCTLS.get(key)
    if ns is None:
        if key.startswith("fs.mqueue."):
            ns = "ipc"
        elif key.startswith("net."):
            ns = "network"
    if ns is None:
        raise _bad(f"sysctl {key!r} is not in a separate kernel namespace")
    if not cfg.has(ns):
        raise _bad(f"sysctl {key!r} is not allowed as it conflicts with the host's {ns} namespace")

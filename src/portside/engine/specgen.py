"""Image config + the user's options -> the runtime's config.json.

Defaults follow podman's rootful ones (capabilities, seccomp profile, masked
and read-only paths, /etc/hosts, /etc/resolv.conf, /etc/hostname bind-mounted
from the container's own directory), so a workload behaves here as there.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import Path
from typing import Any

from portside.engine.api import CreateOptions
from portside.errors import InvalidArgument, NotFound

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# podman's (4.3) and docker's default capabilities
DEFAULT_CAPS = (
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
)

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/dev/block",
)
READONLY_PATHS = (
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

SIGNALS = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "ILL": 4,
    "TRAP": 5,
    "ABRT": 6,
    "BUS": 7,
    "FPE": 8,
    "KILL": 9,
    "USR1": 10,
    "SEGV": 11,
    "USR2": 12,
    "PIPE": 13,
    "ALRM": 14,
    "TERM": 15,
    "STKFLT": 16,
    "CHLD": 17,
    "CONT": 18,
    "STOP": 19,
    "TSTP": 20,
    "TTIN": 21,
    "TTOU": 22,
    "URG": 23,
    "XCPU": 24,
    "XFSZ": 25,
    "VTALRM": 26,
    "PROF": 27,
    "WINCH": 28,
    "IO": 29,
    "PWR": 30,
    "SYS": 31,
}

RLIMITS = {
    "core": "RLIMIT_CORE",
    "cpu": "RLIMIT_CPU",
    "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS",
    "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
    "as": "RLIMIT_AS",
}

INIT_PATH = "/run/portside-init"


def parse_signal(text: str | int) -> int:
    """ "TERM", "SIGTERM", "15" -> 15; one line naming the bad value otherwise."""
    if isinstance(text, int):
        return text
    value = text.strip().upper()
    if value.isdigit() and 0 < int(value) < 65:
        return int(value)
    value = value.removeprefix("SIG")
    if value in SIGNALS:
        return SIGNALS[value]
    if value.startswith("RTMIN"):
        off = value[5:].lstrip("+")
        return 34 + (int(off) if off.isdigit() else 0)
    raise InvalidArgument(f"invalid signal: {text}")


def parse_bytes(text: str, what: str = "size") -> int:
    """docker's RAMInBytes: 512, 64k, 20m, 1g (binary units)."""
    t = text.strip().lower().removesuffix("b")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    mult = 1
    if t and t[-1] in units:
        mult = units[t[-1]]
        t = t[:-1]
    try:
        value = float(t)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text!r}") from None
    if value < 0:
        raise InvalidArgument(f"invalid {what}: {text!r}")
    return int(value * mult)


def parse_duration(text: str, what: str = "duration") -> float:
    """Go durations as docker takes them: 30s, 1m30s, 500ms, 2h (bare number: seconds)."""
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    num = ""
    i = 0
    while i < len(t):
        c = t[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        unit = t[i : i + 2] if t[i : i + 2] in units else c
        if unit not in units or not num:
            raise InvalidArgument(f"invalid {what}: {text!r}")
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise InvalidArgument(f"invalid {what}: {text!r} (missing unit)")
    return total


def _read_db(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _safe(rootfs: Path, rel: str) -> Path:
    """rootfs/rel without following the container's symlinks out of it (/etc only)."""
    p = rootfs / rel.lstrip("/")
    real = os.path.realpath(p)
    if not (real + "/").startswith(os.path.realpath(rootfs) + "/"):
        return rootfs / "nonexistent-outside"
    return Path(real)


def resolve_user(user: str | None, rootfs: Path) -> tuple[int, int, list[int], str]:
    """USER[:GROUP] (names looked up in the rootfs's /etc/passwd and /etc/group) ->
    (uid, gid, supplementary gids, home)."""
    user = (user or "").strip() or "0"
    name, _, group = user.partition(":")
    passwd = _read_db(_safe(rootfs, "etc/passwd"))
    groups = _read_db(_safe(rootfs, "etc/group"))
    uid: int | None = None
    gid: int | None = None
    home = "/"
    username = None
    for entry in passwd:
        if len(entry) < 6:
            continue
        if entry[0] == name or (name.isdigit() and entry[2] == name):
            try:
                uid, gid = int(entry[2]), int(entry[3])
            except ValueError:
                continue
            home = entry[5] or "/"
            username = entry[0]
            break
    if uid is None:
        if not name.isdigit():
            raise NotFound(f"unable to find user {name}: no matching entries in passwd file")
        uid = int(name)
        gid = 0 if gid is None else gid
        home = "/" if uid else "/root"
    if group:
        gid = None
        for entry in groups:
            if len(entry) >= 3 and (entry[0] == group or entry[2] == group):
                try:
                    gid = int(entry[2])
                except ValueError:
                    continue
                break
        if gid is None:
            if not group.isdigit():
                raise NotFound(f"unable to find group {group}: no matching entries in group file")
            gid = int(group)
    assert gid is not None
    extra: list[int] = []
    if username is not None and not group:
        for entry in groups:
            if len(entry) >= 4 and username in entry[3].split(","):
                with_gid = int(entry[2]) if entry[2].isdigit() else None
                if with_gid is not None and with_gid != gid and with_gid not in extra:
                    extra.append(with_gid)
    return uid, gid, extra, home


def read_env_file(path: str) -> list[str]:
    """docker's --env-file: KEY=VALUE lines, a bare KEY takes the caller's value."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InvalidArgument(f"env file {path}: {err.strerror}") from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" in line:
            out.append(line)
        elif line in os.environ:
            out.append(f"{line}={os.environ[line]}")
    return out


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Later values win; a bare NAME takes the caller's environment (as docker -e NAME)."""
    order: dict[str, str] = {}
    for item in [*base, *extra]:
        key, eq, value = item.partition("=")
        if not eq:
            if key in os.environ:
                order[key] = os.environ[key]
            continue
        order[key] = value
    return [f"{k}={v}" for k, v in order.items()]


def command_of(image_cfg: dict[str, Any], opts: CreateOptions) -> list[str]:
    """Entrypoint + Cmd as docker combines them (a new entrypoint drops the image's Cmd)."""
    entry = image_cfg.get("Entrypoint") or []
    cmd = image_cfg.get("Cmd") or []
    if opts.entrypoint is not None:
        entry = opts.entrypoint
        cmd = []
    if opts.command:
        cmd = opts.command
    argv = [*entry, *cmd]
    if not argv:
        raise InvalidArgument("no command specified: the image has no Cmd or Entrypoint")
    return [str(a) for a in argv]


# capability names in kernel bit order
def _words(text: str) -> list[str]:
    return text.split()


CAP_NAMES = _words(
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE"
    " NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO"
    " SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME"
    " SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG"
    " WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
)


def known_caps() -> list[str]:
    """The capabilities this kernel has (a privileged container gets them all)."""
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = 40
    bounding = (1 << (last + 1)) - 1
    try:  # a session without some capabilities cannot grant them (e.g. CAP_SYS_RESOURCE)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                bounding = int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return ["CAP_" + n for i, n in enumerate(CAP_NAMES[: last + 1]) if bounding & (1 << i)]


def _caps(opts: CreateOptions) -> list[str]:
    all_caps = known_caps()
    caps = set(all_caps) if opts.privileged else set(DEFAULT_CAPS)
    for raw in opts.cap_add:
        name = _cap_name(raw)
        if name == "CAP_ALL":
            caps |= set(all_caps)
        elif name not in all_caps:
            raise InvalidArgument(f"unknown capability {raw!r}")
        else:
            caps.add(name)
    for raw in opts.cap_drop:
        name = _cap_name(raw)
        if name == "CAP_ALL":
            caps.clear()
        elif name not in all_caps:
            raise InvalidArgument(f"unknown capability {raw!r}")
        else:
            caps.discard(name)
    return sorted(caps)


def _cap_name(raw: str) -> str:
    name = raw.strip().upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def healthcheck_of(image_cfg: dict[str, Any], opts: CreateOptions) -> dict[str, Any] | None:
    """The monitor's healthcheck document: the command line's, else the image's."""
    if opts.no_healthcheck:
        return None
    hc = dict(image_cfg.get("Healthcheck") or {})
    if opts.health_cmd is not None:
        cmd = opts.health_cmd.strip()
        if cmd.lower() == "none":
            return None
        if cmd.startswith("["):
            import json

            try:
                test = json.loads(cmd)
            except ValueError:
                raise InvalidArgument(f"invalid --health-cmd: {cmd!r}") from None
            hc["Test"] = test if test and test[0] in ("CMD", "CMD-SHELL") else ["CMD", *test]
        else:
            hc["Test"] = ["CMD-SHELL", cmd]
    test = hc.get("Test")
    if not test or test[0] == "NONE":
        return None

    def ns(v: Any, default: float) -> float:
        return float(v) / 1e9 if v else default

    out = {
        "test": list(test),
        "interval": opts.health_interval or ns(hc.get("Interval"), 30.0),
        "timeout": opts.health_timeout or ns(hc.get("Timeout"), 30.0),
        "retries": opts.health_retries or int(hc.get("Retries") or 3),
        "start_period": opts.health_start_period or ns(hc.get("StartPeriod"), 0.0),
    }
    return out


def _resources(opts: CreateOptions) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": _device_rules(opts.privileged)}
    mem: dict[str, Any] = {}
    if opts.memory:
        mem["limit"] = opts.memory
        if opts.memory_swap is None:
            mem["swap"] = opts.memory * 2  # docker: swap as much as memory
        elif opts.memory_swap == -1:
            mem["swap"] = -1
        else:
            if opts.memory_swap < opts.memory:
                raise InvalidArgument("--memory-swap must be at least --memory")
            mem["swap"] = opts.memory_swap
    elif opts.memory_swap not in (None, -1):
        raise InvalidArgument("--memory-swap needs --memory")
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if opts.cpus:
        if opts.cpus < 0:
            raise InvalidArgument(f"invalid --cpus {opts.cpus}")
        cpu["period"] = 100000
        cpu["quota"] = int(opts.cpus * 100000)
    if opts.cpu_shares:
        cpu["shares"] = opts.cpu_shares
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
    if cpu:
        res["cpu"] = cpu
    if opts.pids_limit is not None and opts.pids_limit != 0:
        res["pids"] = {"limit": opts.pids_limit}
    return res


def _device_rules(privileged: bool) -> list[dict[str, Any]]:
    if privileged:
        return [{"allow": True, "access": "rwm"}]
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for major, minor in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1), (136, -1), (5, 2)):
        rule: dict[str, Any] = {"allow": True, "type": "c", "major": major, "access": "rwm"}
        if minor >= 0:
            rule["minor"] = minor
        rules.append(rule)
    return rules


def _ulimits(values: list[str]) -> list[dict[str, Any]]:
    out = []
    for raw in values:
        name, eq, limits = raw.partition("=")
        if not eq or name.lower() not in RLIMITS:
            raise InvalidArgument(f"invalid --ulimit {raw!r}: expected NAME=SOFT[:HARD]")
        soft, _, hard = limits.partition(":")
        try:
            s = -1 if soft == "-1" else int(soft)
            h = int(hard) if hard else s
        except ValueError:
            raise InvalidArgument(f"invalid --ulimit {raw!r}: limits must be numbers") from None
        big = (1 << 64) - 1
        out.append(
            {
                "type": RLIMITS[name.lower()],
                "soft": big if s < 0 else s,
                "hard": big if h < 0 else h,
            }
        )
    return out


def generate(
    image_cfg: dict[str, Any],
    opts: CreateOptions,
    *,
    cid: str,
    rootfs: Path,
    userdata: Path,
    extra_mounts: list[dict[str, Any]],
    init_binary: str | None = None,
    cache_dir: Path | None = None,
    netns_path: str | None = None,
    host_network: bool | None = None,
) -> dict[str, Any]:
    """The whole config.json; `extra_mounts` are the volumes, binds and tmpfs already resolved.
    `netns_path`: the network namespace to join (the engine's pin, another container's, or
    the configured host side); without it the host network (`host_network`, by default
    `--network host`) is shared and anything else gets a fresh one from the runtime."""
    if host_network is None:
        host_network = opts.network == "host"
    argv = command_of(image_cfg, opts)
    if opts.init:
        if init_binary is None:
            raise InvalidArgument("--init: no init binary is available")
        argv = [INIT_PATH, "--", *argv]
    uid, gid, extra_gids, home = resolve_user(opts.user or image_cfg.get("User"), rootfs)
    hostname = opts.hostname or cid[:12]
    env = merge_env(
        [f"PATH={DEFAULT_PATH}"],
        [*(image_cfg.get("Env") or [])],
    )
    env_extra = ["container=portside", f"HOSTNAME={hostname}"]
    if opts.tty:
        env_extra.append("TERM=xterm")
    if not any(e.startswith("HOME=") for e in env):
        env_extra.append(f"HOME={home}")
    file_env: list[str] = []
    for path in opts.env_files:
        file_env += read_env_file(path)
    env = merge_env(env, [*env_extra, *file_env, *opts.env])
    caps = _caps(opts)
    nnp = False
    seccomp: str | None = "default"
    for sopt in opts.security_opt:
        key, _, value = sopt.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            nnp = value in ("", "true", "1")
        elif key == "seccomp":
            seccomp = value or "default"
        elif key in ("label", "apparmor", "mask", "unmask", "proc-opts"):
            continue  # no SELinux/AppArmor here; accepted as podman does when off
        else:
            raise InvalidArgument(f"invalid --security-opt {sopt!r}")
    if opts.privileged:
        seccomp = "unconfined"
    process: dict[str, Any] = {
        "terminal": opts.tty,
        "user": {"uid": uid, "gid": gid, **({"additionalGids": extra_gids} if extra_gids else {})},
        "args": argv,
        "env": env,
        "cwd": opts.workdir or image_cfg.get("WorkingDir") or "/",
        "capabilities": {
            "bounding": list(caps),
            "effective": list(caps),
            "permitted": list(caps),
        },
        "noNewPrivileges": nnp,
    }
    if not process["cwd"].startswith("/"):
        raise InvalidArgument(f"working directory {process['cwd']!r} must be absolute")
    rl = _ulimits(opts.ulimits)
    if rl:
        process["rlimits"] = rl
    nosuid_noexec_nodev = ["nosuid", "noexec", "nodev"]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": nosuid_noexec_nodev},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "noexec", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": nosuid_noexec_nodev,
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": [*nosuid_noexec_nodev, "ro" if not opts.privileged else "rw"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [*nosuid_noexec_nodev, "relatime", "ro" if not opts.privileged else "rw"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": [*nosuid_noexec_nodev, "mode=1777", "size=65536k"],
        },
    ]
    if host_network and not netns_path:
        mounts = [m for m in mounts if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
        mounts.append(
            {
                "destination": "/sys",
                "type": "bind",
                "source": "/sys",
                "options": ["rbind", *nosuid_noexec_nodev, "ro"],
            }
        )
    taken = {m["destination"] for m in extra_mounts}
    for name in ("hosts", "resolv.conf", "hostname"):
        dest = f"/etc/{name}"
        if dest not in taken:
            mounts.append(
                {
                    "destination": dest,
                    "type": "bind",
                    "source": str(userdata / name),
                    "options": ["bind", "rprivate", "nosuid", "noexec", "nodev"],
                }
            )
    if opts.init and init_binary:
        mounts.append(
            {
                "destination": INIT_PATH,
                "type": "bind",
                "source": init_binary,
                "options": ["bind", "ro", "nosuid", "nodev"],
            }
        )
    mounts = [m for m in mounts if m["destination"] not in taken] + extra_mounts
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if netns_path:
        namespaces.append({"type": "network", "path": netns_path})
    elif not host_network:
        namespaces.append({"type": "network"})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": _resources(opts),
        "cgroupsPath": f"/portside/{cid}",
    }
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    else:
        linux["devices"] = host_devices()
    if seccomp == "default":
        linux["seccomp"] = default_seccomp(caps, cache_dir)
    elif seccomp != "unconfined":
        import json

        from portside.runtime.seccomp import profile_to_oci

        try:
            profile = json.loads(Path(str(seccomp)).read_text())
        except (OSError, ValueError) as err:
            raise InvalidArgument(f"seccomp profile {seccomp}: {err}") from None
        linux["seccomp"] = profile_to_oci(profile, caps)
    annotations = {k: str(v) for k, v in opts.labels.items()}
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(rootfs), "readonly": opts.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    }


def default_seccomp(caps: list[str], cache_dir: Path | None) -> dict[str, Any]:
    """The default profile for these capabilities, converted once and kept in `cache_dir`
    (keyed by the capabilities and the profile file), since converting it costs more
    than the rest of a container's config."""
    import hashlib
    import json

    from portside.runtime.seccomp import default_linux_seccomp

    if cache_dir is None:
        return default_linux_seccomp(caps)
    data = Path(__file__).resolve().parent.parent / "data" / "seccomp" / "default.json"
    try:
        st = data.stat()
    except OSError:
        return default_linux_seccomp(caps)
    key = hashlib.sha256(
        f"{os.uname().machine}:{st.st_size}:{st.st_mtime_ns}:{','.join(sorted(caps))}".encode()
    ).hexdigest()[:24]
    path = cache_dir / f"seccomp-{key}.json"
    try:
        doc = json.loads(path.read_text())
        if isinstance(doc, dict):
            return doc
    except (OSError, ValueError):
        pass
    doc = default_linux_seccomp(caps)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
    except OSError:
        pass
    return doc


_SKIP_DEV = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/dev/ptmx", "/dev/tty")


def host_devices() -> list[dict[str, Any]]:
    """Every device node of the host's /dev, for --privileged (as docker and podman)."""
    import stat

    out: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in _SKIP_DEV]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path in _SKIP_DEV:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            out.append(
                {
                    "path": path,
                    "type": kind,
                    "major": os.major(st.st_rdev),
                    "minor": os.minor(st.st_rdev),
                    "fileMode": stat.S_IMODE(st.st_mode),
                    "uid": st.st_uid,
                    "gid": st.st_gid,
                }
            )
    return out


def write_etc_files(userdata: Path, hostname: str, network: str) -> None:
    """/etc/hosts, /etc/resolv.conf and /etc/hostname for the container, podman's way."""
    userdata.mkdir(parents=True, exist_ok=True)
    hosts = "127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost localhost.localdomain\n"
    if network == "host":
        with contextlib.suppress(OSError):
            hosts = Path("/etc/hosts").read_text()
    hosts += f"127.0.1.1\t{hostname}\n"
    resolv = ""
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
        resolv = "\n".join(
            line
            for line in lines
            if network == "host" or not line.strip().startswith("nameserver 127.")
        )
    except OSError:
        pass
    if "nameserver" not in resolv and network != "host":
        resolv += "\nnameserver 8.8.8.8\nnameserver 8.8.4.4"
    for name, text in (
        ("hosts", hosts),
        ("resolv.conf", resolv.strip() + "\n"),
        ("hostname", hostname + "\n"),
    ):
        tmp = userdata / f".{name}.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, userdata / name)


def split_command(text: str) -> list[str]:
    """A command given as one string (e.g. --entrypoint 'sh -c'): shell words."""
    return shlex.split(text)

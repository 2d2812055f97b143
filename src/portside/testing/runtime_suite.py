"""A conformance suite for OCI runtimes with runc's command line.

One base spec (busybox bundle, like `runc spec` with the process made
non-interactive) and one mutator per scenario; the probe is busybox itself,
reporting from inside the container (/proc/self/status, hostname, id,
mountinfo, ulimit). The same scenarios run against portside-runtime, runc and
crun, so each behaviour is held against the reference implementations.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APPLETS = [
    "sh",
    "cat",
    "echo",
    "hostname",
    "id",
    "ls",
    "mount",
    "sleep",
    "true",
    "false",
    "touch",
    "mkdir",
    "readlink",
    "wc",
    "grep",
    "head",
    "stat",
    "ulimit",
    "umask",
    "pwd",
    "env",
    "test",
    "printf",
    "uname",
    "ps",
    "kill",
    "rm",
    "ln",
]

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def make_rootfs(path: Path, busybox: str = "/bin/busybox") -> Path:
    """A minimal root filesystem: static busybox and links for the applets the probes use."""
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "mnt", "root"):
        (path / d).mkdir(parents=True, exist_ok=True)
    (path / "tmp").chmod(0o1777)
    shutil.copy2(busybox, path / "bin" / "busybox")
    for applet in APPLETS:
        link = path / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
    )
    (path / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")
    return path


def base_spec(rootfs: str, args: list[str]) -> dict[str, Any]:
    """`runc spec`'s default, non-interactive, with a writable root."""
    from portside.oci.runtime_spec import default_spec

    spec = default_spec()
    spec["ociVersion"] = "1.0.2"
    process = spec["process"]
    process.update(terminal=False, args=args, env=[process["env"][0]])
    process["capabilities"] = {
        k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted")
    }
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["hostname"] = "portside-suite"
    return spec


@dataclass
class Runtime:
    """A runc-compatible command line: `argv` then the verb."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def __call__(
        self, *args: str, timeout: float = 60, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, **self.env}
        # files, not pipes: a detached container inherits the runtime's stdio and would
        # hold a pipe open long after the runtime has exited
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            r = subprocess.run(
                [*self.argv, *args],
                stdout=out,
                stderr=err,
                timeout=timeout,
                input=input,
                env=env,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())


def crun_v1_wrapper(directory: Path) -> Path:
    """crun 1.8 refuses hybrid cgroups: run it where cgroup2 is unmounted (a private mount ns)."""
    script = directory / "crun-v1"
    script.write_text(
        "#!/bin/sh\n"
        "exec unshare -m --propagation private sh -c "
        '\'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"\' crun "$@"\n'
    )
    script.chmod(0o755)
    return script


@dataclass
class Bundle:
    """One scenario's bundle on disk."""

    dir: Path
    rootfs: Path
    spec: dict[str, Any]
    scratch: Path
    cleanups: list[Callable[[], object]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    def write(self) -> None:
        (self.dir / "config.json").write_text(json.dumps(self.spec))


@dataclass
class Scenario:
    """Change the base spec, run the container, judge what it printed (and the host)."""

    name: str
    args: list[str]
    mutate: Callable[[Bundle], None] = lambda b: None
    check: Callable[[Bundle, subprocess.CompletedProcess[bytes]], None] = lambda b, r: None
    exit_code: int = 0
    # peers that lack the feature must refuse the config rather than ignore it
    unsupported_by: frozenset[str] = frozenset()
    # peers that may refuse the config (the host-side check still runs)
    may_refuse: frozenset[str] = frozenset()
    # peers that accept the config but do not implement it (checked: they still run it)
    ignored_by: frozenset[str] = frozenset()


def _status(out: str, key: str) -> str:
    for line in out.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in /proc/self/status output:\n{out}")


def _stdout(r: subprocess.CompletedProcess[bytes]) -> str:
    return r.stdout.decode(errors="replace")


def _sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def _set(path: str, value: Any) -> Callable[[Bundle], None]:
    def mutate(b: Bundle) -> None:
        node = b.spec
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = copy.deepcopy(value)

    return mutate


def _chain(*fns: Callable[[Bundle], None]) -> Callable[[Bundle], None]:
    def mutate(b: Bundle) -> None:
        for fn in fns:
            fn(b)

    return mutate


def _expect(expected: str) -> Callable[[Bundle, subprocess.CompletedProcess[bytes]], None]:
    def check(b: Bundle, r: subprocess.CompletedProcess[bytes]) -> None:
        assert _stdout(r).strip() == expected, _stdout(r) + r.stderr.decode(errors="replace")

    return check


def _caps_check(eff: str, bnd: str, amb: str = "0000000000000000", nnp: str = "1") -> Any:
    def check(b: Bundle, r: subprocess.CompletedProcess[bytes]) -> None:
        out = _stdout(r)
        assert _status(out, "CapEff") == eff, out
        assert _status(out, "CapPrm") == eff, out
        assert _status(out, "CapBnd") == bnd, out
        assert _status(out, "CapAmb") == amb, out
        assert _status(out, "NoNewPrivs") == nnp, out

    return check


def _mountinfo_has(dest: str, *opts: str) -> Any:
    def check(b: Bundle, r: subprocess.CompletedProcess[bytes]) -> None:
        for line in _stdout(r).splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[4] == dest:
                mount_opts = set(fields[5].split(","))
                assert set(opts) <= mount_opts, line
                return
        raise AssertionError(f"{dest} not mounted:\n{_stdout(r)}")

    return check


def _symlink_escape(b: Bundle) -> None:
    outside = b.scratch / "outside"
    (b.rootfs / "evil").symlink_to(str(outside))
    b.spec["mounts"].append({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"})


def _symlink_escape_check(b: Bundle, r: subprocess.CompletedProcess[bytes]) -> None:
    assert not (b.scratch / "outside").exists(), "a mount followed a symlink out of the rootfs"


def _bind_ro(b: Bundle) -> None:
    src = b.scratch / "shared"
    src.mkdir()
    (src / "hello").write_text("from the host\n")
    b.spec["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind", "ro"]}
    )


def _userns(b: Bundle) -> None:
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.spec["mounts"] = [m for m in b.spec["mounts"] if m["type"] != "cgroup"]
    for m in b.spec["mounts"]:
        if m["type"] == "devpts":
            m["options"] = [o for o in m["options"] if o != "gid=5"]


def _join_netns(b: Bundle) -> None:
    """A named network namespace, made and removed with ip(8)."""
    name = f"portside-suite-{os.getpid()}-{abs(hash(str(b.dir))) % 10**8}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    b.cleanups.append(lambda: subprocess.run(["ip", "netns", "delete", name], check=False))
    path = f"/run/netns/{name}"
    b.spec["linux"]["namespaces"] = [
        {"type": "network", "path": path} if n["type"] == "network" else n
        for n in b.spec["linux"]["namespaces"]
    ]
    b.notes["netns"] = f"net:[{os.stat(path).st_ino}]"


def _join_netns_check(b: Bundle, r: subprocess.CompletedProcess[bytes]) -> None:
    assert _stdout(r).split() == [b.notes["netns"]], _stdout(r)


def _hooks(b: Bundle) -> None:
    out = b.scratch
    b.spec["hooks"] = {
        kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{kind}.json"]}]
        for kind in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    }
    b.spec["hooks"]["startContainer"] = [
        {"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer.json"]}
    ]


def _hooks_check(b: Bundle, r: subprocess.CompletedProcess[bytes]) -> None:
    for kind in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
        path = b.scratch / f"{kind}.json"
        assert path.exists(), f"{kind} hook did not run"
        state = json.loads(path.read_text())
        assert state["id"] == b.dir.name, state
        # crun 1.8 reports pid 0 to createContainer; every runtime knows it by poststart
        assert kind != "poststart" or state["pid"] > 0, state
        assert state["bundle"] == str(b.dir), state
    state = json.loads((b.rootfs / "tmp" / "startContainer.json").read_text())
    assert state["id"] == b.dir.name


SCENARIOS: list[Scenario] = [
    Scenario("pid1", _sh("echo $$"), check=_expect("1")),
    Scenario("hostname", ["hostname"], check=_expect("portside-suite")),
    Scenario("exit-status", _sh("exit 7"), exit_code=7),
    Scenario(
        "env-cwd",
        _sh('echo "$FOO:$(pwd)"'),
        mutate=_chain(
            _set("process.env", ["PATH=/bin", "FOO=bar baz"]), _set("process.cwd", "/tmp")
        ),
        check=_expect("bar baz:/tmp"),
    ),
    Scenario(
        "missing-cwd-is-made",
        ["pwd"],
        mutate=_set("process.cwd", "/made/by/runtime"),
        check=_expect("/made/by/runtime"),
    ),
    Scenario(
        "default-caps",
        ["cat", "/proc/self/status"],
        check=_caps_check("0000000020000420", "0000000020000420"),
    ),
    Scenario(
        "all-five-cap-sets",
        ["cat", "/proc/self/status"],
        mutate=_chain(
            _set(
                "process.capabilities",
                {
                    "bounding": [*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_CHOWN"],
                    "effective": [*DEFAULT_CAPS, "CAP_CHOWN"],
                    "permitted": [*DEFAULT_CAPS, "CAP_CHOWN"],
                    "inheritable": ["CAP_CHOWN"],
                    "ambient": ["CAP_CHOWN"],
                },
            ),
            _set("process.noNewPrivileges", False),
            _set("process.user", {"uid": 1000, "gid": 1000}),
        ),
        # not root: after execve only the ambient set survives into permitted and effective
        check=_caps_check("0000000000000001", "0000000020200421", amb="0000000000000001", nnp="0"),
    ),
    Scenario(
        "user-and-groups",
        ["id"],
        mutate=_set("process.user", {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}),
        check=_expect("uid=1000(user) gid=1000(user) groups=10,20"),
    ),
    Scenario(
        "rlimits",
        _sh("ulimit -n; ulimit -Hn; ulimit -c"),
        mutate=_set(
            "process.rlimits",
            [
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            ],
        ),
        check=_expect("512\n1000\n0"),
    ),
    Scenario(
        "oom-score-adj",
        ["cat", "/proc/self/oom_score_adj"],
        mutate=_set("process.oomScoreAdj", 500),
        check=_expect("500"),
    ),
    Scenario("umask", _sh("umask"), mutate=_set("process.user.umask", 0o27), check=_expect("0027")),
    Scenario(
        "masked-paths",
        _sh("wc -c < /proc/timer_list; ls /sys/firmware | wc -l; cat /proc/keys | wc -c"),
        check=_expect("0\n0\n0"),
    ),
    Scenario(
        "readonly-paths",
        _sh(
            "echo x > /proc/sysrq-trigger 2>/dev/null && echo writable; "
            "echo x > /proc/sys/kernel/domainname 2>/dev/null && echo writable; echo done"
        ),
        check=_expect("done"),
    ),
    Scenario(
        "readonly-root",
        _sh("touch /newfile 2>/dev/null && echo writable; touch /dev/shm/ok && echo tmpfs-ok"),
        mutate=_set("root.readonly", True),
        check=_expect("tmpfs-ok"),
    ),
    Scenario(
        "tmpfs-mount-options",
        ["cat", "/proc/self/mountinfo"],
        mutate=lambda b: b.spec["mounts"].append(
            {
                "destination": "/mnt/scratch",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "noexec", "size=1m"],
            }
        ),
        check=_mountinfo_has("/mnt/scratch", "nosuid", "nodev", "noexec"),
    ),
    Scenario(
        "bind-ro",
        _sh("cat /data/hello; touch /data/new 2>/dev/null && echo writable; echo end"),
        mutate=_bind_ro,
        check=_expect("from the host\nend"),
    ),
    Scenario(
        "symlink-never-leads-a-mount-outside",
        ["cat", "/proc/self/mountinfo"],
        mutate=_symlink_escape,
        check=_symlink_escape_check,
        may_refuse=frozenset({"crun"}),  # crun refuses the dangling link; runc contains it
    ),
    Scenario(
        "dev-setup",
        _sh(
            "readlink /dev/ptmx; readlink /dev/fd; "
            "ls /dev/null /dev/zero /dev/full /dev/tty /dev/urandom /dev/random /dev/fuse"
        ),
        mutate=lambda b: (
            b.spec["linux"]
            .setdefault("devices", [])
            .append(
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}
            )
        ),
        check=_expect(
            "pts/ptmx\n/proc/self/fd\n/dev/full\n/dev/fuse\n/dev/null\n/dev/random\n/dev/tty\n"
            "/dev/urandom\n/dev/zero"
        ),
    ),
    Scenario(
        "loopback-up-in-new-netns",
        _sh("cat /sys/class/net/lo/flags; ls /sys/class/net"),
        check=_expect("0x9\nlo"),
    ),
    Scenario(
        "sysctl",
        ["cat", "/proc/sys/net/ipv4/ip_forward"],
        mutate=_set("linux.sysctl", {"net.ipv4.ip_forward": "1"}),
        check=_expect("1"),
    ),
    Scenario(
        "user-namespace-maps",
        _sh("cat /proc/self/uid_map /proc/self/gid_map; id -u"),
        mutate=_userns,
        check=lambda b, r: _assert(
            _stdout(r).split() == ["0", "100000", "65536", "0", "100000", "65536", "0"], _stdout(r)
        ),
    ),
    Scenario(
        "time-namespace-offsets",
        _sh("cut -d. -f1 /proc/uptime"),
        mutate=_chain(
            lambda b: b.spec["linux"]["namespaces"].append({"type": "time"}),
            _set("linux.timeOffsets", {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}),
        ),
        # runc 1.1 has no time namespace; crun 1.8 fails to set its offsets
        unsupported_by=frozenset({"runc", "crun"}),
        check=lambda b, r: _assert(int(_stdout(r).strip()) >= 86400 * 365, _stdout(r)),
    ),
    Scenario(
        "cgroup-namespace",
        _sh("grep -c ':/$' /proc/self/cgroup; wc -l < /proc/self/cgroup"),
        mutate=lambda b: b.spec["linux"]["namespaces"].append({"type": "cgroup"}),
        check=lambda b, r: _assert(
            len(set(_stdout(r).split())) == 1, "paths not rooted at / in a cgroup namespace"
        ),
    ),
    Scenario("hooks", ["true"], mutate=_hooks, check=_hooks_check),
    Scenario(
        "personality-linux32",
        ["uname", "-m"],
        mutate=lambda b: b.spec["linux"].update(personality={"domain": "LINUX32"}),
        check=_expect("i686"),
        ignored_by=frozenset({"runc"}),  # runc 1.1 has no personality support
    ),
    Scenario(
        "domainname",
        ["cat", "/proc/sys/kernel/domainname"],
        mutate=_set("domainname", "suite.example"),
        check=_expect("suite.example"),
        ignored_by=frozenset({"runc"}),  # runc 1.1 ignores domainname
    ),
    Scenario(
        "bind-propagation-flags",
        ["cat", "/proc/self/mountinfo"],
        mutate=_chain(
            _bind_ro,
            lambda b: b.spec["mounts"][-1]["options"].extend(["nosuid", "noexec", "rprivate"]),
        ),
        check=_mountinfo_has("/data", "ro", "nosuid", "noexec"),
    ),
    Scenario(
        "join-network-namespace-by-path",
        ["readlink", "/proc/self/ns/net"],
        mutate=_join_netns,
        check=_join_netns_check,
    ),
    Scenario(
        "seccomp-errno-and-arg-compare",
        _sh(
            "grep '^Seccomp:' /proc/self/status; mkdir /tmp/d 2>/dev/null || echo mkdir-denied; "
            "kill -0 $$ && echo sig0-ok; kill -USR1 $$ 2>/dev/null || echo usr1-denied"
        ),
        mutate=lambda b: b.spec["linux"].update(seccomp=SECCOMP_PROFILE),
        check=_expect("Seccomp:\t2\nmkdir-denied\nsig0-ok\nusr1-denied"),
    ),
    Scenario(
        "seccomp-without-no-new-privileges",
        _sh("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"),
        mutate=_chain(
            lambda b: b.spec["linux"].update(seccomp=SECCOMP_PROFILE),
            _set("process.noNewPrivileges", False),
        ),
        check=_expect("NoNewPrivs:\t0\nSeccomp:\t2"),
    ),
    Scenario(
        "memory-limit-oom-kills",
        _sh("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $?"),
        mutate=_set("linux.resources.memory", {"limit": 16 * 1024 * 1024}),
        check=_expect("137"),
    ),
    Scenario(
        "pids-limit-stops-a-fork-bomb",
        _sh("for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do sleep 30 & done; echo forked"),
        mutate=_set("linux.resources.pids", {"limit": 8}),
        exit_code=2,  # busybox sh gives up when fork fails
        check=lambda b, r: _assert(b"can't fork" in r.stderr, r.stderr.decode()),
    ),
]


SECCOMP_PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {
            "names": ["kill"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}],
        },
    ],
}


def _assert(cond: bool, msg: str) -> None:
    assert cond, msg


def prepare(scenario: Scenario, base: Path, rootfs_template: Path | None = None) -> Bundle:
    """A fresh bundle for one scenario under `base` (its name is the container id)."""
    # the id (= bundle name) is unique per process: two test runs at once must not share
    # a container id, whose default cgroup path is the id itself
    bundle = base / f"ps{os.getpid()}-{scenario.name}"
    bundle.mkdir(parents=True)
    scratch = base / "scratch"
    scratch.mkdir()
    rootfs = bundle / "rootfs"
    if rootfs_template is not None:
        shutil.copytree(rootfs_template, rootfs, symlinks=True)
    else:
        make_rootfs(rootfs)
    b = Bundle(bundle, rootfs, base_spec(str(rootfs), scenario.args), scratch)
    try:
        scenario.mutate(b)
    except BaseException:
        for cleanup in b.cleanups:
            cleanup()
        raise
    b.write()
    return b


def run_scenario(runtime: Runtime, scenario: Scenario, base: Path) -> None:
    """Run one scenario with `runtime` and hold it to the scenario's expectations."""
    if scenario.name == "user-namespace-maps":
        # the mapped root must be able to reach the rootfs: pytest's tmp dirs are 0700
        base = Path(tempfile.mkdtemp(prefix="portside-userns-"))
        base.chmod(0o711)
        try:
            b = prepare(scenario, base)
            _chown_tree(b.rootfs, 100000)
            _run_checked(runtime, scenario, b)
        finally:
            shutil.rmtree(base)
        return
    b = prepare(scenario, base)
    try:
        _run_checked(runtime, scenario, b)
    finally:
        for cleanup in b.cleanups:
            cleanup()


def _run_checked(runtime: Runtime, scenario: Scenario, b: Bundle) -> None:
    r = runtime("run", "-b", str(b.dir), b.dir.name)
    err = r.stderr.decode(errors="replace")
    if runtime.name in scenario.unsupported_by:
        assert r.returncode != 0, f"{runtime.name} accepted a config it cannot honour"
        return
    if runtime.name in scenario.may_refuse and r.returncode != 0:
        scenario.check(b, r)
        return
    assert r.returncode == scenario.exit_code, f"{runtime.name}: exit {r.returncode}: {err}"
    if runtime.name not in scenario.ignored_by:
        scenario.check(b, r)
    left = runtime("list", "-q")
    assert b.dir.name not in left.stdout.decode().split(), f"{runtime.name} left state behind"


def _chown_tree(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.lchown(dirpath, uid, uid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)

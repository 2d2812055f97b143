"""portside-runtime's command line end to end: lifecycle, exec, console, errors, cleanup."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from portside.testing.runtime_suite import Runtime, base_spec, make_rootfs
from tests.conftest import need_root

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

PORTSIDE_RUNTIME = str(Path(sys.executable).with_name("portside-runtime"))


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rootfs(tmp_path_factory.mktemp("rootfs") / "rootfs")


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    need_root()
    return Runtime("portside", [PORTSIDE_RUNTIME, "--root", str(tmp_path / "state")])


def bundle(tmp_path: Path, template: Path, args: list[str], **changes: Any) -> Path:
    b = tmp_path / "bundle"
    b.mkdir(exist_ok=True)
    spec = base_spec(str(template), args)
    # every test gets its own cgroup name, so a leftover is attributable
    spec["linux"]["cgroupsPath"] = f"/portside-test-{os.getpid()}-{tmp_path.name}"
    for key, value in changes.items():
        node = spec
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    (b / "config.json").write_text(json.dumps(spec))
    return b


def cgroup_dirs(name: str) -> list[str]:
    out = []
    for ctrl in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", ctrl)
        for root, dirs, _ in os.walk(base):
            out += [os.path.join(root, d) for d in dirs if name in d]
            if root.count("/") > 6:
                dirs[:] = []
    return out


def state(rt: Runtime, cid: str) -> dict[str, Any]:
    r = rt("state", cid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_as_library(code: str) -> list[str]:
    """Run `code` in a fresh interpreter started as the launcher starts one, with portside
    importable (the runtime used as a library); the words it printed."""
    prelude = f"import sys; sys.path.insert(0, {SRC!r})\n"
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + code], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def ok(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def test_lifecycle_create_start_kill_delete(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"], annotations={"a": "b"})
    ok(rt("create", "-b", str(b), "life"))
    s = state(rt, "life")
    assert s["status"] == "created" and s["pid"] > 0
    assert s["bundle"] == str(b) and s["annotations"] == {"a": "b"} and s["id"] == "life"
    # blocked on the exec fifo: sleep has not been exec'd yet
    assert "sleep" not in Path(f"/proc/{s['pid']}/cmdline").read_bytes().decode()
    ok(rt("start", "life"))
    s = state(rt, "life")
    assert s["status"] == "running"
    assert Path(f"/proc/{s['pid']}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    r = rt("start", "life")
    assert r.returncode == 1 and b"cannot start an already running container" in r.stderr
    r = rt("delete", "life")
    assert r.returncode == 1 and b"not stopped: running" in r.stderr
    ok(rt("kill", "life", "KILL"))
    deadline = time.monotonic() + 10
    while state(rt, "life")["status"] != "stopped":
        assert time.monotonic() < deadline, "container did not stop after SIGKILL"
        time.sleep(0.02)
    ok(rt("delete", "life"))
    r = rt("state", "life")
    assert r.returncode == 1 and b'msg="container does not exist"' in r.stderr
    assert cgroup_dirs(f"portside-test-{os.getpid()}-{tmp_path.name}") == []


def test_init_is_adopted_by_the_create_callers_subreaper(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"])
    helper = (
        "import ctypes, json, os, subprocess, sys\n"
        "ctypes.CDLL('libc.so.6').prctl(36, 1, 0, 0, 0)\n"
        f"subprocess.run(sys.argv[1:] + ['create', '-b', {str(b)!r}, 'adopt'], check=True)\n"
        "st = json.loads(subprocess.run(sys.argv[1:] + ['state', 'adopt'],"
        " capture_output=True, check=True).stdout)\n"
        "stat = open(f\"/proc/{st['pid']}/stat\").read()\n"
        "print(stat[stat.rindex(')') + 2:].split()[1], os.getpid())\n"
        "subprocess.run(sys.argv[1:] + ['delete', '-f', 'adopt'], check=True)\n"
    )
    r = subprocess.run([sys.executable, "-c", helper, *rt.argv], capture_output=True)
    assert r.returncode == 0, r.stderr
    ppid, caller = r.stdout.split()
    assert ppid == caller


def test_run_exit_status_and_no_state_left(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["sh", "-c", "echo out; echo err >&2; exit 42"])
    r = rt("run", "-b", str(b), "st")
    assert r.returncode == 42
    assert r.stdout == b"out\n" and r.stderr == b"err\n"
    assert ok(rt("list", "-q")) == ""


def test_run_never_imports_click_rich_httpx(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["true"])
    dump = tmp_path / "modules.txt"
    rt.env["PORTSIDE_RUNTIME_DUMP_MODULES"] = str(dump)
    ok(rt("run", "-b", str(b), "light"))
    modules = set(dump.read_text().split())
    assert "portside.runtime.process.launcher" in modules
    for heavy in ("click", "rich", "httpx", "portside.cli", "argparse"):
        assert heavy not in modules, f"{heavy} imported by portside-runtime run"


def test_list_formats(rt: Runtime, tmp_path: Path, rootfs_template: Path) -> None:
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"])
    ok(rt("create", "-b", str(b), "lst"))
    try:
        table = ok(rt("list")).splitlines()
        assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        assert table[1].split()[0] == "lst" and table[1].split()[2] == "created"
        (entry,) = json.loads(ok(rt("list", "-f", "json")))
        assert entry["id"] == "lst" and entry["status"] == "created"
        assert ok(rt("list", "-q")) == "lst\n"
    finally:
        ok(rt("delete", "-f", "lst"))
    assert ok(rt("list", "-q")) == ""


def test_kill_signal_names_and_numbers(rt: Runtime, tmp_path: Path, rootfs_template: Path) -> None:
    script = "trap 'echo got-usr1 > /tmp/sig' USR1; while :; do sleep 0.05; done"
    b = bundle(tmp_path, rootfs_template, ["sh", "-c", script])
    ok(rt("run", "-d", "-b", str(b), "sig"))
    try:
        time.sleep(0.3)
        ok(rt("kill", "sig", "SIGUSR1"))
        deadline = time.monotonic() + 10
        marker = rootfs_template / "tmp" / "sig"
        while not marker.exists():
            assert time.monotonic() < deadline, "USR1 never arrived"
            time.sleep(0.02)
        marker.unlink()
        ok(rt("kill", "sig", "9"))
        r = rt("kill", "sig", "NOSUCHSIG")
        assert r.returncode == 1
    finally:
        rt("delete", "-f", "sig")


def test_exec_variants(rt: Runtime, tmp_path: Path, rootfs_template: Path) -> None:
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"], hostname="execbox")
    ok(rt("run", "-d", "-b", str(b), "ex"))
    try:
        assert ok(rt("exec", "ex", "hostname")) == "execbox\n"
        out = ok(rt("exec", "--env", "X=1", "--cwd", "/tmp", "ex", "sh", "-c", "echo $X $(pwd)"))
        assert out == "1 /tmp\n"
        assert ok(rt("exec", "--user", "1000:1000", "ex", "id", "-u")) == "1000\n"
        r = rt("exec", "ex", "sh", "-c", "exit 5")
        assert r.returncode == 5
        status = ok(rt("exec", "--cap", "CAP_SYS_ADMIN", "ex", "cat", "/proc/self/status"))
        eff = next(ln for ln in status.splitlines() if ln.startswith("CapEff"))
        assert int(eff.split()[1], 16) & (1 << 21)
        proc = {"args": ["sh", "-c", "echo $$ $Y"], "env": ["Y=from-json"], "cwd": "/"}
        (tmp_path / "p.json").write_text(json.dumps(proc))
        pid_in, y = ok(rt("exec", "-p", str(tmp_path / "p.json"), "ex")).split()
        assert y == "from-json" and pid_in != "1"
        pidfile = tmp_path / "exec.pid"
        ok(rt("exec", "-d", "--pid-file", str(pidfile), "ex", "sleep", "1000"))
        assert int(pidfile.read_text()) in json.loads(ok(rt("ps", "-f", "json", "ex")))
        r = rt("exec", "ex", "/no/such/binary")
        assert r.returncode == 255 and b"/no/such/binary" in r.stderr
    finally:
        ok(rt("delete", "-f", "ex"))


def test_console_socket_sends_the_pty_master(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["sh", "-c", "tty; echo size $(stty size)"])
    spec = json.loads((b / "config.json").read_text())
    spec["process"]["terminal"] = True
    spec["process"]["consoleSize"] = {"height": 30, "width": 100}
    spec["process"]["args"] = ["sh", "-c", "tty; ls -l /dev/console | wc -l"]
    (b / "config.json").write_text(json.dumps(spec))
    sock_path = tmp_path / "console.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    try:
        r = rt("create", "-b", str(b), "--console-socket", str(sock_path), "tty")
        assert r.returncode == 0, r.stderr
        conn, _ = server.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        assert len(fds) == 1
        master = fds[0]
        ok(rt("start", "tty"))
        out = b""
        deadline = time.monotonic() + 10
        while b"\n1" not in out and time.monotonic() < deadline:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        assert b"/dev/pts/0" in out, out
    finally:
        server.close()
        rt("delete", "-f", "tty")


def test_terminal_without_console_socket_is_refused(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["sh"])
    spec = json.loads((b / "config.json").read_text())
    spec["process"]["terminal"] = True
    (b / "config.json").write_text(json.dumps(spec))
    r = rt("create", "-b", str(b), "notty")
    assert r.returncode == 1 and b"console socket" in r.stderr
    assert ok(rt("list", "-q")) == ""


def test_pid_file_no_pivot_and_log_file(rt: Runtime, tmp_path: Path, rootfs_template: Path) -> None:
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"])
    pidfile = tmp_path / "init.pid"
    ok(rt("create", "--no-pivot", "--pid-file", str(pidfile), "-b", str(b), "pf"))
    try:
        assert int(pidfile.read_text()) == state(rt, "pf")["pid"]
    finally:
        ok(rt("delete", "-f", "pf"))
    log = tmp_path / "log.json"
    r = Runtime("p", [*rt.argv, "--log", str(log), "--log-format", "json"])("state", "nope")
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == "container does not exist"
    assert r.stderr == b"container does not exist\n"


def test_pause_resume_update_events_ps(rt: Runtime, tmp_path: Path, rootfs_template: Path) -> None:
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"])
    ok(rt("run", "-d", "-b", str(b), "pr"))
    try:
        ok(rt("pause", "pr"))
        assert state(rt, "pr")["status"] == "paused"
        ok(rt("resume", "pr"))
        assert state(rt, "pr")["status"] == "running"
        ok(rt("update", "--pids-limit", "17", "pr"))
        assert ok(rt("exec", "pr", "cat", "/sys/fs/cgroup/pids/pids.max")) == "17\n"
        event = json.loads(ok(rt("events", "--stats", "pr")))
        assert event["type"] == "stats" and event["id"] == "pr" and "pids" in event["data"]
        pids = json.loads(ok(rt("ps", "-f", "json", "pr")))
        assert state(rt, "pr")["pid"] in pids
        table = ok(rt("ps", "pr"))
        assert "sleep 1000" in table
    finally:
        ok(rt("delete", "-f", "pr"))


def test_systemd_cgroup_is_a_clear_error(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["true"])
    r = Runtime("p", [*rt.argv, "--systemd-cgroup"])("run", "-b", str(b), "sd")
    assert r.returncode == 1 and b"systemd" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert ok(rt("list", "-q")) == ""


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln for ln in f if str(path) in ln]


CGROUP_MOUNT = {
    "destination": "/sys/fs/cgroup",
    "type": "cgroup",
    "source": "cgroup",
    "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
}

BAD_CONFIGS = {
    "missing-root": (lambda s: s.pop("root"), "root must be specified"),
    "root-path-missing": (
        lambda s: s["root"].update(path="/nonexistent/rootfs"),
        "invalid rootfs: stat /nonexistent/rootfs: no such file or directory",
    ),
    "unknown-namespace": (
        lambda s: s["linux"]["namespaces"].append({"type": "foo"}),
        'namespace {\\"foo\\" \\"\\"} does not exist',
    ),
    "args0-missing": (
        lambda s: s["process"].update(args=["/nope"]),
        'exec: \\"/nope\\": stat /nope: no such file or directory',
    ),
    "bad-mount-source": (
        lambda s: s["mounts"].append(
            {"destination": "/x", "type": "bind", "source": "/no/such", "options": ["bind"]}
        ),
        "/no/such",
    ),
    # the init fails before the runtime's GO (its cgroup is made after the fork, meanwhile)
    "bad-first-mount": (
        lambda s: s["mounts"].insert(
            0, {"destination": "/x", "type": "bind", "source": "/no/such", "options": ["bind"]}
        ),
        "/no/such",
    ),
    # the cgroup made after the fork fails: the init waiting for GO is killed
    "bad-cpuset": (
        lambda s: s["linux"].setdefault("resources", {}).update(cpu={"cpus": "4096"}),
        "cpuset.cpus",
    ),
    # the same with a cgroup mount, the init's last (the usual spec): it waits for GO there
    "bad-cpuset-cgroup-mount": (
        lambda s: (
            s["mounts"].append(dict(CGROUP_MOUNT)),
            s["linux"].setdefault("resources", {}).update(cpu={"cpus": "4096"}),
        ),
        "cpuset.cpus",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_one_line_and_nothing_left(
    rt: Runtime, tmp_path: Path, rootfs_template: Path, case: str
) -> None:
    b = bundle(tmp_path, rootfs_template, ["true"])
    spec = json.loads((b / "config.json").read_text())
    mutate, message = BAD_CONFIGS[case]
    mutate(spec)
    (b / "config.json").write_text(json.dumps(spec))
    before = _mounts_under(rootfs_template)
    r = rt("run", "-b", str(b), "bad")
    assert r.returncode == 1
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith('time="') and " level=error msg=" in lines[0]
    assert message in lines[0], lines[0]
    assert ok(rt("list", "-q")) == ""
    assert not (tmp_path / "state" / "bad").exists()
    assert cgroup_dirs(f"portside-test-{os.getpid()}-{tmp_path.name}") == []
    assert _mounts_under(rootfs_template) == before


def test_invalid_json_and_duplicate_id(rt: Runtime, tmp_path: Path, rootfs_template: Path) -> None:
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"])
    ok(rt("create", "-b", str(b), "dup"))
    try:
        r = rt("create", "-b", str(b), "dup")
        assert r.returncode == 1
        assert b"container with given ID already exists" in r.stderr
        assert state(rt, "dup")["status"] == "created"
    finally:
        ok(rt("delete", "-f", "dup"))
    (b / "config.json").write_text("{bad")
    r = rt("run", "-b", str(b), "js")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert b"invalid" in r.stderr.lower()
    assert ok(rt("list", "-q")) == ""


def test_hook_state_and_failing_hook_cleans_up(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    out = tmp_path / "prestart.json"
    hooks = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}]}
    b = bundle(tmp_path, rootfs_template, ["true"], hooks=hooks)
    ok(rt("run", "-b", str(b), "hk"))
    st = json.loads(out.read_text())
    assert st["id"] == "hk" and st["pid"] > 0 and st["status"] == "creating"
    hooks = {"createRuntime": [{"path": "/bin/false"}]}
    b = bundle(tmp_path, rootfs_template, ["true"], hooks=hooks)
    r = rt("run", "-b", str(b), "hk2")
    assert r.returncode == 1 and b"createRuntime hook #0" in r.stderr
    assert ok(rt("list", "-q")) == ""
    assert cgroup_dirs(f"portside-test-{os.getpid()}-{tmp_path.name}") == []


def test_events_reports_an_oom_kill(rt: Runtime, tmp_path: Path, rootfs_template: Path) -> None:
    script = "sleep 0.5; dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 1000"
    b = bundle(tmp_path, rootfs_template, ["sh", "-c", script])
    spec = json.loads((b / "config.json").read_text())
    spec["linux"]["resources"]["memory"] = {"limit": 16 * 1024 * 1024}
    (b / "config.json").write_text(json.dumps(spec))
    ok(rt("create", "-b", str(b), "oom"))
    events = subprocess.Popen(
        [*rt.argv, "events", "--interval", "10s", "oom"], stdout=subprocess.PIPE
    )
    try:
        time.sleep(0.3)
        ok(rt("start", "oom"))
        assert events.stdout is not None
        line = events.stdout.readline()
        assert json.loads(line) == {"type": "oom", "id": "oom"}
    finally:
        events.kill()
        events.wait()
        rt("delete", "-f", "oom")


def test_bad_seccomp_profile_is_a_config_error(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["true"])
    spec = json.loads((b / "config.json").read_text())
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_NOPE"}
    (b / "config.json").write_text(json.dumps(spec))
    r = rt("run", "-b", str(b), "sc")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert b"SCMP_ACT_NOPE" in r.stderr
    assert ok(rt("list", "-q")) == ""
    assert cgroup_dirs(f"portside-test-{os.getpid()}-{tmp_path.name}") == []


def test_foreground_run_with_a_terminal_proxies_the_pty(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    import pexpect

    b = bundle(tmp_path, rootfs_template, ["sh", "-c", "tty; read x; echo got-$x; exit 3"])
    spec = json.loads((b / "config.json").read_text())
    spec["process"]["terminal"] = True
    (b / "config.json").write_text(json.dumps(spec))
    child = pexpect.spawn(rt.argv[0], [*rt.argv[1:], "run", "-b", str(b), "tty-fg"], timeout=20)
    try:
        child.expect("/dev/pts/0")
        child.sendline("hello")
        child.expect("got-hello")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 3
    finally:
        if child.isalive():
            child.kill(9)
        rt("delete", "-f", "tty-fg")
    assert ok(rt("list", "-q")) == ""


def test_exec_tty_in_the_foreground(rt: Runtime, tmp_path: Path, rootfs_template: Path) -> None:
    import pexpect

    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"])
    ok(rt("run", "-d", "-b", str(b), "extty"))
    try:
        child = pexpect.spawn(
            rt.argv[0], [*rt.argv[1:], "exec", "-t", "extty", "sh", "-c", "tty; exit 4"]
        )
        child.expect("/dev/pts/")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 4
    finally:
        ok(rt("delete", "-f", "extty"))


def test_seccomp_notify_listener_gets_the_fd(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    sock_path = tmp_path / "seccomp.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    b = bundle(tmp_path, rootfs_template, ["true"])
    spec = json.loads((b / "config.json").read_text())
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(sock_path),
        "listenerMetadata": "meta",
        "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    (b / "config.json").write_text(json.dumps(spec))
    try:
        ok(rt("create", "-b", str(b), "notify"))
        conn, _ = server.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        conn.close()
        assert len(fds) == 1
        os.close(fds[0])
        payload = json.loads(msg)
        assert payload["fds"] == ["seccompFd"] and payload["metadata"] == "meta"
        assert payload["state"]["id"] == "notify"
        assert payload["pid"] == state(rt, "notify")["pid"]
    finally:
        server.close()
        rt("delete", "-f", "notify")


def test_a_create_killed_midway_does_not_block_the_id(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    # what a SIGKILLed create leaves: the id's directory and its fifo, no state.json
    leftover = tmp_path / "state" / "half"
    leftover.mkdir(parents=True)
    os.mkfifo(leftover / "exec.fifo")
    assert ok(rt("list", "-q")) == ""
    b = bundle(tmp_path, rootfs_template, ["true"])
    ok(rt("run", "-b", str(b), "half"))
    assert not leftover.exists()


def test_kill_all_reaches_every_process(rt: Runtime, tmp_path: Path, rootfs_template: Path) -> None:
    b = bundle(tmp_path, rootfs_template, ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    spec = json.loads((b / "config.json").read_text())
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]
    (b / "config.json").write_text(json.dumps(spec))
    ok(rt("run", "-d", "-b", str(b), "all"))
    try:
        deadline = time.monotonic() + 10
        while len(pids := json.loads(ok(rt("ps", "-f", "json", "all")))) < 3:
            assert time.monotonic() < deadline, pids
            time.sleep(0.02)
        ok(rt("kill", "--all", "all", "KILL"))
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{p}").exists() and b"Z" not in _stat(p) for p in pids):
            assert time.monotonic() < deadline, "kill --all left processes"
            time.sleep(0.02)
    finally:
        ok(rt("delete", "-f", "all"))


@pytest.mark.parametrize("own_pid_ns", [True, False], ids=["own-pid-ns", "host-pid-ns"])
def test_run_leaves_no_process_of_the_container_behind(
    rt: Runtime, tmp_path: Path, rootfs_template: Path, own_pid_ns: bool
) -> None:
    """A process the init leaves running dies with the container: with a PID namespace of
    its own the kernel kills it when the init exits; without one, `run`'s clean-up kills
    what is left in the cgroup (as runc), before the cgroup can be removed."""
    out = tmp_path / "bg.pid"
    b = bundle(tmp_path, rootfs_template, ["sh", "-c", "sleep 1000 & echo $! > /out/bg.pid"])
    spec = json.loads((b / "config.json").read_text())
    if not own_pid_ns:
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]
    spec["mounts"].append(
        {"destination": "/out", "type": "bind", "source": str(tmp_path), "options": ["rbind"]}
    )
    (b / "config.json").write_text(json.dumps(spec))
    ok(rt("run", "-b", str(b), "bg"))
    assert cgroup_dirs(f"portside-test-{os.getpid()}-{tmp_path.name}") == []
    if not own_pid_ns:  # its pid is the host's: it must be gone (or a zombie)
        pid = int(out.read_text())
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and _stat(pid) != b"Z":
            assert time.monotonic() < deadline, "the background process outlived run"
            time.sleep(0.02)
    assert ok(rt("list", "-q")) == ""


def _stat(pid: int) -> bytes:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return b"Z"
    return raw[raw.rindex(b")") + 2 :][:1]


def _validator(name: str) -> Any:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    from tests.conftest import SPECS

    schemas = SPECS / "runtime-spec" / "schema"
    registry: Registry[Any] = Registry()
    for f in schemas.glob("*.json"):
        res = Resource.from_contents(json.loads(f.read_text()), default_specification=DRAFT4)
        registry = registry.with_resource(f"file://{f}", res).with_resource(f.name, res)
    schema = json.loads((schemas / name).read_text())
    return jsonschema.Draft4Validator(schema, registry=registry)


def test_state_spec_and_features_follow_the_runtime_spec_schemas(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"], annotations={"x": "y"})
    ok(rt("create", "-b", str(b), "schema"))
    try:
        _validator("state-schema.json").validate(state(rt, "schema"))
    finally:
        ok(rt("delete", "-f", "schema"))
    for rootless in (False, True):
        d = tmp_path / f"spec-{rootless}"
        d.mkdir()
        flags = ["--rootless"] if rootless else []
        ok(rt("spec", "-b", str(d), *flags))
        ours = json.loads((d / "config.json").read_text())
        _validator("config-schema.json").validate(ours)
        r = rt("spec", "-b", str(d))
        assert r.returncode == 1 and b"exists" in r.stderr
        runc_dir = tmp_path / f"runc-spec-{rootless}"
        runc_dir.mkdir()
        subprocess.run(["runc", "spec", "-b", str(runc_dir), *flags], check=True)
        theirs = json.loads((runc_dir / "config.json").read_text())
        for key in ("namespaces", "maskedPaths", "readonlyPaths", "uidMappings"):
            assert ours["linux"].get(key) == theirs["linux"].get(key), key
        assert [m["destination"] for m in ours["mounts"]] == [
            m["destination"] for m in theirs["mounts"]
        ]
        assert ours["process"]["capabilities"]["bounding"] == sorted(
            theirs["process"]["capabilities"]["bounding"]
        )
    features = json.loads(ok(rt("features")))
    _validator("features-schema.json").validate(features)
    assert features["ociVersionMax"] == "1.3.0"
    assert {"pid", "mount", "user", "cgroup"} <= set(features["linux"]["namespaces"])


def test_join_pid_uts_ipc_namespaces_of_another_container(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    first = tmp_path / "first"
    first.mkdir()
    b1 = bundle(first, rootfs_template, ["sleep", "1000"], hostname="first-host")
    ok(rt("run", "-d", "-b", str(b1), "first"))
    try:
        pid = state(rt, "first")["pid"]
        b2 = bundle(tmp_path, rootfs_template, ["sh", "-c", "hostname; ps -o args"])
        spec = json.loads((b2 / "config.json").read_text())
        joined = {"pid": "pid", "uts": "uts", "ipc": "ipc"}
        spec["linux"]["namespaces"] = [
            {"type": n["type"], "path": f"/proc/{pid}/ns/{joined[n['type']]}"}
            if n["type"] in joined
            else n
            for n in spec["linux"]["namespaces"]
        ]
        del spec["hostname"]
        (b2 / "config.json").write_text(json.dumps(spec))
        out = ok(rt("run", "-b", str(b2), "second")).splitlines()
        assert out[0] == "first-host"
        assert "sleep 1000" in out[1:], out
    finally:
        ok(rt("delete", "-f", "first"))


def test_only_stdio_and_preserved_fds_reach_the_process(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["ls", "/proc/self/fd"])
    script = (
        "import os, subprocess, sys\n"
        "a = os.open('/dev/null', os.O_RDONLY); os.set_inheritable(a, True)\n"
        "b = os.open('/dev/null', os.O_RDONLY); os.set_inheritable(b, True)\n"
        "assert (a, b) == (3, 4), (a, b)\n"
        "out = subprocess.run(sys.argv[1:], capture_output=True, close_fds=False)\n"
        "sys.stdout.write(out.stdout.decode() + '|' + out.stderr.decode())\n"
    )

    def fds(*extra: str) -> list[str]:
        r = subprocess.run(
            [sys.executable, "-c", script, *rt.argv, "run", *extra, "-b", str(b), "fd"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        out, _, err = r.stdout.decode().partition("|")
        assert r.returncode == 0, err
        return sorted(out.split())

    # ls itself opens one more fd to read the directory
    assert fds() == ["0", "1", "2", "3"]
    assert fds("--preserve-fds", "1") == ["0", "1", "2", "3", "4"]


def test_hook_timeout_and_poststop_on_delete(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    hooks = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    b = bundle(tmp_path, rootfs_template, ["true"], hooks=hooks)
    r = rt("run", "-b", str(b), "slow")
    assert r.returncode == 1 and b"prestart hook #0: timeout after 1s" in r.stderr
    assert ok(rt("list", "-q")) == ""
    out = tmp_path / "poststop.json"
    hooks = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}]}
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"], hooks=hooks)
    ok(rt("create", "-b", str(b), "ps-hook"))
    ok(rt("delete", "-f", "ps-hook"))
    assert json.loads(out.read_text())["id"] == "ps-hook"


def test_pause_a_created_container_and_runc_exit_codes(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"])
    ok(rt("create", "-b", str(b), "pc"))
    try:
        ok(rt("pause", "pc"))
        assert state(rt, "pc")["status"] == "paused"
        r = rt("start", "pc")
        assert r.returncode == 1 and b"paused" in r.stderr
        ok(rt("resume", "pc"))
        assert state(rt, "pc")["status"] == "created"
        ok(rt("start", "pc"))
        ok(rt("kill", "pc", "KILL"))
        deadline = time.monotonic() + 10
        while state(rt, "pc")["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        r = rt("exec", "pc", "true")
        assert (
            r.returncode == 255 and b"exec failed: cannot exec in a stopped container" in r.stderr
        )
        assert rt("nosuchverb").returncode == 3
    finally:
        ok(rt("delete", "-f", "pc"))


def test_created_init_is_in_its_cgroup_in_every_hierarchy(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    """The init joins its v1 cgroups itself (through `tasks`) and the runtime moves it into
    the cgroup2 one: from outside, every hierarchy shows it in the container's cgroup."""
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"])
    name = f"portside-test-{os.getpid()}-{tmp_path.name}"
    ok(rt("create", "-b", str(b), "joined"))
    try:
        pid = state(rt, "joined")["pid"]
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        assert lines and all(line.endswith(f":/{name}") for line in lines), lines
    finally:
        ok(rt("delete", "-f", "joined"))
    assert cgroup_dirs(name) == []


def test_cgroup_mount_shows_the_containers_own_cgroup2_directory(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    """On a hybrid host the init is moved into its cgroup2 directory while it mounts
    (launcher._join_late): the mount must still show that directory, not the one the
    init started in. Its cgroup.procs then lists the container's process alone."""
    if not os.path.ismount("/sys/fs/cgroup/unified"):
        pytest.skip("this machine has no hybrid cgroup2 mount at /sys/fs/cgroup/unified")
    b = bundle(tmp_path, rootfs_template, ["cat", "/sys/fs/cgroup/unified/cgroup.procs"])
    spec = json.loads((b / "config.json").read_text())
    spec["mounts"].append(
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        }
    )
    (b / "config.json").write_text(json.dumps(spec))
    assert ok(rt("run", "-b", str(b), "cg2")).split() == ["1"]


def test_library_create_leaves_the_callers_pid_namespace_for_children_alone(
    tmp_path: Path, rootfs_template: Path
) -> None:
    """With one fork the runtime makes the init's PID namespace for its own next child,
    then restores its own: a process that uses the runtime as a library (main(argv) in a
    long-lived process) must fork its later children where it always did."""
    need_root()
    b = bundle(tmp_path, rootfs_template, ["sleep", "1000"])
    code = (
        "import os\n"
        "from portside.runtime.process import launcher\n"
        f"c = launcher.create({str(tmp_path / 'state')!r}, 'lib', {str(b)!r})\n"
        "try:\n"
        "    same = os.readlink('/proc/self/ns/pid_for_children') == "
        "os.readlink('/proc/self/ns/pid')\n"
        "    status = open(f'/proc/{c.pid}/status').read()\n"
        "    nspid = [ln.split()[1:] for ln in status.splitlines() if ln.startswith('NSpid:')][0]\n"
        "    ppid = int(open(f'/proc/{c.pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
        "    print(same, nspid[-1], ppid == os.getpid())\n"
        "finally:\n"
        "    launcher.delete(c, force=True)\n"
    )
    assert run_as_library(code) == ["True", "1", "True"]


def test_main_with_argv_runs_in_a_callers_process_and_returns(
    tmp_path: Path, rootfs_template: Path
) -> None:
    """main(argv) is the entry point a monitor may call in a forked child instead of
    exec'ing the runtime: it returns the container's status and leaves the collector
    and the PID namespace for new children as it found them."""
    need_root()
    b = bundle(tmp_path, rootfs_template, ["sh", "-c", "exit 7"])
    argv = ["--root", str(tmp_path / "state"), "run", "-b", str(b), "inproc"]
    code = (
        "import gc, os\n"
        "gc.enable()\n"
        "from portside.runtime.cli.main import main\n"
        f"status = main({argv!r})\n"
        "same = os.readlink('/proc/self/ns/pid_for_children') == "
        "os.readlink('/proc/self/ns/pid')\n"
        "print(status, gc.isenabled(), same)\n"
    )
    assert run_as_library(code) == ["7", "True", "True"]
    assert not (tmp_path / "state" / "inproc").exists()


def test_run_starts_without_an_exec_fifo(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    """`run` starts the init over the sync pipe: no fifo to make and remove on the state
    directory's filesystem. The poststart hook still sees the container running."""
    out = tmp_path / "poststart.txt"
    state_dir = tmp_path / "state" / "nofifo"
    hook = {
        "path": "/bin/sh",
        "args": ["sh", "-c", f"cat > {out}; echo >> {out}; ls {state_dir} >> {out}"],
    }
    b = bundle(tmp_path, rootfs_template, ["true"], hooks={"poststart": [hook]})
    ok(rt("run", "-b", str(b), "nofifo"))
    text = out.read_text()
    assert json.loads(text.splitlines()[0])["status"] == "running"
    assert "state.json" in text and "exec.fifo" not in text


@pytest.mark.parametrize("hook", [False, True], ids=["no-hook", "poststart-hook"])
def test_run_lets_the_init_go_on_at_once_unless_something_comes_between(
    tmp_path: Path, rootfs_template: Path, hook: bool
) -> None:
    """`run` with nothing to do between create and start (no pid file, console, poststart
    or startContainer hook) lets the init go on past READY: no START round trip. With a
    poststart hook the init waits for START, and the hook sees it running."""
    need_root()
    out = tmp_path / "poststart.txt"
    hooks = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}]}
    b = bundle(
        tmp_path, rootfs_template, ["sh", "-c", "exit 7"], **({"hooks": hooks} if hook else {})
    )
    code = (
        "from portside.runtime.process import launcher\n"
        f"c = launcher.create({str(tmp_path / 'state')!r}, 'once', {str(b)!r},"
        " exec_fifo=False, start_at_once=True)\n"
        "waiting = c.start_channel is not None\n"
        "if waiting:\n"
        "    launcher.start(c)\n"
        "print(c.started, waiting, launcher.wait_exit(c.pid))\n"
        "launcher.destroy(c)\n"
    )
    assert run_as_library(code) == (["False", "True", "7"] if hook else ["True", "False", "7"])
    if hook:
        assert json.loads(out.read_text())["status"] == "running"
    assert not (tmp_path / "state" / "once").exists()


def test_compiled_seccomp_is_reused_from_the_state_root(
    rt: Runtime, tmp_path: Path, rootfs_template: Path
) -> None:
    """The compiled filter is kept under ROOT/@seccomp (a name no id can take, so `list`
    skips it); a later container installs the kept program, and a damaged one is rebuilt."""
    rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    b = bundle(tmp_path, rootfs_template, ["mkdir", "/tmp/x"], linux__seccomp=seccomp)
    cache = tmp_path / "state" / "@seccomp"
    first: tuple[int, int] | None = None
    for n in range(4):
        if n == 3:  # damaged: read as absent, compiled again and rewritten
            (kept,) = cache.iterdir()
            kept.write_bytes(b"{not json\n")
        r = rt("run", "-b", str(b), f"sc{n}")
        assert r.returncode == 1 and b"Permission denied" in r.stderr, r.stderr
        assert ok(rt("list", "-q")) == ""
        if n == 0:
            continue  # the first start made the state root: no cache before it existed
        (kept,) = cache.iterdir()
        st = kept.stat()
        if first is None:
            first = (st.st_ino, st.st_mtime_ns)
        elif n < 3:  # reused: never rewritten (a rewrite is a rename: a new inode)
            assert (st.st_ino, st.st_mtime_ns) == first
    (kept,) = cache.iterdir()
    assert kept.name.endswith(".bpf") and kept.read_bytes().startswith(b'{"flags"')


@pytest.mark.parametrize("cgroup_mount_last", [True, False])
def test_limits_are_in_place_before_the_process_runs(
    rt: Runtime, tmp_path: Path, rootfs_template: Path, cgroup_mount_last: bool
) -> None:
    """The cgroup is made after the fork (launcher.create), beside the init's work: the
    process still starts under its limits, device rules included (it reads a device they
    allow), whether the init's cgroup mount is its last mount or not."""
    script = (
        "cat /sys/fs/cgroup/pids/pids.max; grep -c . /sys/fs/cgroup/devices/devices.list; "
        "head -c 3 /dev/zero | wc -c"
    )
    b = bundle(tmp_path, rootfs_template, ["sh", "-c", script])
    spec = json.loads((b / "config.json").read_text())
    spec["mounts"].append(dict(CGROUP_MOUNT))
    if not cgroup_mount_last:
        spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    spec["linux"]["resources"] = {
        "pids": {"limit": 42},
        "devices": [{"allow": False, "access": "rwm"}],
    }
    (b / "config.json").write_text(json.dumps(spec))
    out = ok(rt("run", "-b", str(b), "limits")).split()
    assert out[0] == "42", out
    assert int(out[1]) > 1, out  # a list of allowed devices, not the host's "a *:* rwm"
    assert out[2:] == ["3"], out
    assert cgroup_dirs(f"portside-test-{os.getpid()}-{tmp_path.name}") == []

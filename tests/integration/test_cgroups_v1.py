"""cgroup v1 for real: cgroups under this machine's hierarchies, real processes in them.

Every cgroup is named portside-test-* and removed in the fixture's teardown,
after the processes the test started are killed by pid.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from portside.errors import CgroupError
from portside.runtime import cgroups
from portside.runtime.cgroups.v1 import V1Manager
from tests.conftest import need_root

pytestmark = [pytest.mark.root, pytest.mark.cgroup]

BUSYBOX = "/bin/busybox"


def _v1_available() -> bool:
    return cgroups.detect_mode() in ("v1", "hybrid")


@pytest.fixture
def mgr() -> Iterator[V1Manager]:
    need_root()
    if not _v1_available():
        pytest.skip("this machine has no cgroup v1 hierarchies (unified-only host)")
    name = f"portside-test-{uuid.uuid4().hex[:10]}"
    m = cgroups.create_manager(name, f"/{name}")
    assert isinstance(m, V1Manager)
    m.create()
    procs: list[subprocess.Popen[bytes]] = []
    m.started = procs  # type: ignore[attr-defined]
    try:
        yield m
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        # anything else left in the cgroup was forked by our processes
        for pid in m.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if m.is_frozen():
            m.thaw()
        m.destroy()
        assert not m.exists()


def start_in(mgr: V1Manager, *argv: str) -> subprocess.Popen[bytes]:
    """Start a process that joins the cgroup before it execs (no window outside it)."""
    proc = subprocess.Popen(
        argv, preexec_fn=lambda: _join_self(mgr), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    mgr.started.append(proc)  # type: ignore[attr-defined]
    return proc


def _join_self(mgr: V1Manager) -> None:
    for path in mgr.paths.values():
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write("0")


def read(mgr: V1Manager, ctrl: str, name: str) -> str:
    return Path(mgr.paths[ctrl], name).read_text().strip()


def test_create_makes_a_cgroup_in_every_mounted_controller(mgr: V1Manager) -> None:
    mounts = cgroups.read_mounts()
    for ctrl in ("memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "blkio"):
        if ctrl in mounts.v1:
            assert os.path.isdir(mgr.paths[ctrl]), ctrl
            assert mgr.paths[ctrl] == os.path.join(mounts.v1[ctrl], mgr.container_id)
    # cpuset starts empty in a new cgroup; create() copied the parent's so tasks can join
    assert read(mgr, "cpuset", "cpuset.cpus") == read_parent(mgr, "cpuset", "cpuset.cpus")
    assert read(mgr, "cpuset", "cpuset.mems") == read_parent(mgr, "cpuset", "cpuset.mems")


def read_parent(mgr: V1Manager, ctrl: str, name: str) -> str:
    return Path(os.path.dirname(mgr.paths[ctrl]), name).read_text().strip()


def test_add_process_and_pids(mgr: V1Manager) -> None:
    proc = subprocess.Popen([BUSYBOX, "sleep", "60"])
    mgr.started.append(proc)  # type: ignore[attr-defined]
    mgr.add_process(proc.pid)
    assert mgr.pids() == [proc.pid]
    for ctrl in ("memory", "pids", "freezer"):
        assert str(proc.pid) in read(mgr, ctrl, "cgroup.procs").split()
    cg = Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines()
    assert f"4:memory:/{mgr.container_id}" in cg or any(
        line.endswith(f":memory:/{mgr.container_id}") for line in cg
    )
    if cgroups.read_mounts().unified:
        # hybrid: in the cgroup2 hierarchy too, as runc does
        assert f"0::/{mgr.container_id}" in cg


def test_limits_are_written_and_read_back_from_the_kernel(mgr: V1Manager) -> None:
    mgr.apply_resources(
        {
            "memory": {
                "limit": 64 << 20,
                "reservation": 32 << 20,
                "swap": 96 << 20,
                "swappiness": 10,
                "kernel": 1 << 30,  # ignored, as runc does
                "kernelTCP": 16 << 20,
                "disableOOMKiller": True,
            },
            "cpu": {
                "shares": 512,
                "quota": 50000,
                "period": 100000,
                "burst": 10000,
                "idle": 0,
                "realtimePeriod": 1000000,
                "realtimeRuntime": 1000,
                "cpus": "0",
                "mems": "0",
            },
            "pids": {"limit": 42},
            "blockIO": {
                "weight": 300,
                "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 100}],
            },
        }
    )
    assert read(mgr, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert read(mgr, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(mgr, "memory", "memory.memsw.limit_in_bytes") == str(96 << 20)
    assert read(mgr, "memory", "memory.swappiness") == "10"
    assert read(mgr, "memory", "memory.kmem.tcp.limit_in_bytes") == str(16 << 20)
    assert "oom_kill_disable 1" in read(mgr, "memory", "memory.oom_control")
    assert read(mgr, "cpu", "cpu.cfs_burst_us") == "10000"
    assert read(mgr, "cpu", "cpu.shares") == "512"
    assert read(mgr, "cpu", "cpu.cfs_quota_us") == "50000"
    assert read(mgr, "cpu", "cpu.cfs_period_us") == "100000"
    assert read(mgr, "cpu", "cpu.rt_runtime_us") == "1000"
    assert read(mgr, "cpuset", "cpuset.cpus") == "0"
    assert read(mgr, "cpuset", "cpuset.mems") == "0"
    assert read(mgr, "pids", "pids.max") == "42"
    if os.path.exists(os.path.join(mgr.paths["blkio"], "blkio.bfq.weight")):
        assert read(mgr, "blkio", "blkio.bfq.weight").split()[-1] == "300"
    assert read(mgr, "blkio", "blkio.throttle.read_bps_device") == "254:0 1048576"
    assert read(mgr, "blkio", "blkio.throttle.write_iops_device") == "254:0 100"


def test_update_lowers_memory_below_the_old_swap_limit(mgr: V1Manager) -> None:
    # The write order matters: memory must stay <= memory+swap at every step.
    mgr.apply_resources({"memory": {"limit": 256 << 20, "swap": 512 << 20}})
    mgr.apply_resources({"memory": {"limit": 32 << 20, "swap": 64 << 20}})
    assert read(mgr, "memory", "memory.limit_in_bytes") == str(32 << 20)
    assert read(mgr, "memory", "memory.memsw.limit_in_bytes") == str(64 << 20)
    mgr.apply_resources({"memory": {"limit": 1 << 30, "swap": 2 << 30}})
    assert read(mgr, "memory", "memory.limit_in_bytes") == str(1 << 30)
    mgr.apply_resources({"memory": {"limit": -1}})
    assert int(read(mgr, "memory", "memory.limit_in_bytes")) > 1 << 60
    assert int(read(mgr, "memory", "memory.memsw.limit_in_bytes")) > 1 << 60
    mgr.apply_resources({"pids": {"limit": -1}})
    assert read(mgr, "pids", "pids.max") == "max"


def test_bad_values_give_one_line_naming_the_field(mgr: V1Manager) -> None:
    with pytest.raises(CgroupError, match=r"memory\.swappiness: invalid value 101"):
        mgr.apply_resources({"memory": {"swappiness": 101}})
    with pytest.raises(CgroupError, match=r"cpu\.cpus: invalid list 'zero'"):
        mgr.apply_resources({"cpu": {"cpus": "zero"}})
    with pytest.raises(CgroupError, match=r"cpuset\.cpus") as info:
        mgr.apply_resources({"cpu": {"cpus": "0-63"}})  # more cpus than the machine has
    assert "\n" not in str(info.value)
    with pytest.raises(CgroupError, match="needs cgroup v2"):
        mgr.apply_resources({"unified": {"memory.high": "1M"}})


def test_hugetlb_on_a_hybrid_host_uses_the_cgroup2_controller(mgr: V1Manager) -> None:
    if "hugetlb" in mgr.paths:
        pytest.skip("hugetlb is a v1 controller here; the hybrid path cannot be reached")
    mounts = cgroups.read_mounts()
    root = mounts.unified
    has = root is not None and "hugetlb" in Path(root, "cgroup.controllers").read_text().split()
    limits = [{"pageSize": "2MB", "limit": 4 << 20}]
    if not has:
        with pytest.raises(CgroupError, match="hugetlb cgroup controller is not mounted"):
            mgr.apply_resources({"hugepageLimits": limits})
        return
    assert root is not None
    control = Path(root, "cgroup.subtree_control")
    enabled_before = "hugetlb" in control.read_text().split()
    try:
        mgr.apply_resources({"hugepageLimits": limits})
        unified = Path(mgr.paths["unified"])
        assert (unified / "hugetlb.2MB.max").read_text().strip() == str(4 << 20)
        assert mgr.stats()["hugetlb"]["2MB"] == {"max": 4 << 20, "failcnt": 0}
    finally:
        mgr.destroy()
        if not enabled_before:  # leave the host's cgroup2 root as we found it
            control.write_text("-hugetlb")
    assert ("hugetlb" in control.read_text().split()) == enabled_before


def test_shares_out_of_range_are_reported_like_runc(mgr: V1Manager) -> None:
    with pytest.raises(CgroupError, match="the maximum allowed cpu-shares is 262144"):
        mgr.apply_resources({"cpu": {"shares": 10**7}})


def test_device_rules_restrict_a_real_process(mgr: V1Manager) -> None:
    mgr.apply_resources({"devices": [{"allow": False, "access": "rwm"}]})
    listed = read(mgr, "devices", "devices.list").splitlines()
    assert "c 1:3 rwm" in listed  # /dev/null from the default list
    assert "c 136:* rwm" in listed
    assert "a *:* rwm" not in listed
    script = (
        "cat /dev/null && echo null-ok; "
        "head -c1 /dev/kmsg >/dev/null 2>&1 || echo kmsg-denied; "
        "head -c1 /dev/mem >/dev/null 2>&1 || echo mem-denied"
    )
    proc = start_in(mgr, BUSYBOX, "sh", "-c", script)
    out, _ = proc.communicate(timeout=30)
    assert out.decode().split() == ["null-ok", "kmsg-denied", "mem-denied"]


def test_linux_devices_are_allowed_after_a_deny_all(mgr: V1Manager) -> None:
    mgr.apply_resources(
        {"devices": [{"allow": False, "access": "rwm"}]},
        linux_devices=[{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}],
    )
    assert "c 1:11 rwm" in read(mgr, "devices", "devices.list").splitlines()


@pytest.mark.timeout(120)
def test_memory_limit_oom_kills_a_hog_and_is_counted(mgr: V1Manager) -> None:
    mgr.apply_resources({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    assert mgr.oom_kill_count() == 0
    seen: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=lambda: seen.extend(cgroups.watch_oom(mgr, stop=stop, interval=0.2))
    )
    watcher.start()
    try:
        hog = "x = []\nwhile True: x.append(bytearray(1 << 20))\n"
        proc = start_in(mgr, sys.executable, "-c", hog)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert mgr.oom_kill_count() == 1
    finally:
        # Give the watcher its wake-up (bounded), then end it; what it saw is in `seen`.
        for _ in range(100):
            if seen:
                break
            watcher.join(0.1)
        stop.set()
        watcher.join()
    assert seen == [1]


FORK_BOMB = """
import os, sys
ok = refused = 0
for _ in range(20):
    try:
        pid = os.fork()
    except BlockingIOError:
        refused += 1
        continue
    if pid == 0:
        os.execv("/bin/busybox", ["sleep", "60"])
    ok += 1
print(ok, refused, flush=True)
sys.stdin.read()
"""


@pytest.mark.timeout(60)
def test_pids_limit_stops_a_bounded_fork_bomb(mgr: V1Manager) -> None:
    mgr.apply_resources({"pids": {"limit": 8}})
    # The python process is 1 task: of its 20 forks at most 7 can succeed.
    proc = subprocess.Popen(
        [sys.executable, "-c", FORK_BOMB],
        preexec_fn=lambda: _join_self(mgr),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    mgr.started.append(proc)  # type: ignore[attr-defined]
    assert proc.stdout is not None
    ok, refused = (int(x) for x in proc.stdout.readline().split())
    assert ok == 7
    assert refused == 13
    assert len(mgr.pids()) == 8
    assert read(mgr, "pids", "pids.current") == "8"
    assert read(mgr, "pids", "pids.events") == "max 13"
    for pid in mgr.pids():
        if pid != proc.pid:
            os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait(timeout=30)


def test_blkio_weight_device_needs_bfq_on_that_disk(mgr: V1Manager) -> None:
    sched = Path("/sys/block/vda/queue/scheduler")
    if not sched.exists():
        pytest.skip("no /sys/block/vda on this machine to throttle")
    rule = {"weightDevice": [{"major": 254, "minor": 0, "weight": 200}]}
    if "[bfq]" in sched.read_text():
        mgr.apply_resources({"blockIO": rule})
        assert "254:0 200" in read(mgr, "blkio", "blkio.bfq.weight_device")
    else:
        # The kernel refuses per-device weights unless bfq schedules the disk, as for runc.
        with pytest.raises(CgroupError, match=r"weight_device: Operation not supported"):
            mgr.apply_resources({"blockIO": rule})


def test_freeze_and_thaw(mgr: V1Manager) -> None:
    proc = start_in(mgr, BUSYBOX, "sleep", "60")
    assert not mgr.is_frozen()
    mgr.freeze()
    assert mgr.is_frozen()
    assert read(mgr, "freezer", "freezer.state") == "FROZEN"
    assert proc.poll() is None
    mgr.thaw()
    assert not mgr.is_frozen()
    assert read(mgr, "freezer", "freezer.state") == "THAWED"
    proc.kill()
    proc.wait(timeout=30)


def test_stats_have_runc_events_shape(mgr: V1Manager) -> None:
    mgr.apply_resources({"pids": {"limit": 100}, "memory": {"limit": 128 << 20}})
    proc = start_in(mgr, BUSYBOX, "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
    proc.communicate(timeout=60)
    stats = mgr.stats()
    json.dumps(stats)  # serialisable as is
    assert set(stats) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert stats["cpu"]["usage"]["total"] > 0
    assert len(stats["cpu"]["usage"]["percpu"]) == os.cpu_count()
    # zero counters are left out, as Go's omitempty does in runc's output
    assert set(stats["cpu"]["throttling"]) <= {"periods", "throttledPeriods", "throttledTime"}
    assert stats["memory"]["usage"]["limit"] == 128 << 20
    assert stats["memory"]["usage"]["max"] > 0
    assert "rss" in stats["memory"]["raw"] or "total_rss" in stats["memory"]["raw"]
    assert stats["pids"] == {"limit": 100}
    assert stats["memory"]["swap"]["limit"] > 1 << 62  # unlimited reads raw, like runc
    assert stats["intel_rdt"] == {} and stats["network_interfaces"] is None


def test_state_round_trip(mgr: V1Manager) -> None:
    data = json.loads(json.dumps(mgr.to_state()))
    again = cgroups.CgroupManager.from_state(data)
    assert isinstance(again, V1Manager)
    assert again.paths == mgr.paths
    assert again.exists()


def test_destroy_waits_for_exiting_tasks(mgr: V1Manager) -> None:
    proc = start_in(mgr, BUSYBOX, "sleep", "60")
    proc.kill()  # not reaped yet: the zombie is already out of the cgroup
    proc.wait()
    mgr.destroy()
    assert not mgr.exists()


def test_relative_and_default_paths_follow_runc() -> None:
    mounts = cgroups.read_mounts()
    if not mounts.v1:
        pytest.skip("no cgroup v1 hierarchies on this machine")
    own = cgroups.own_cgroups()
    rel = cgroups.create_manager("ctr", "portside-test-rel/ctr", mounts=mounts)
    default = cgroups.create_manager("portside-test-ctr", None, mounts=mounts)
    escaped = cgroups.create_manager("x", "../../portside-test-esc", mounts=mounts)
    assert isinstance(rel, V1Manager) and isinstance(default, V1Manager)
    assert isinstance(escaped, V1Manager)
    mem_base = os.path.join(mounts.v1["memory"], own["memory"].lstrip("/"))
    assert rel.paths["memory"] == os.path.join(mem_base, "portside-test-rel/ctr")
    assert default.paths["memory"] == os.path.join(mem_base, "portside-test-ctr")
    assert escaped.paths["memory"] == os.path.join(mem_base, "portside-test-esc")
    assert not rel.exists() and not default.exists()  # nothing made before create()


def test_systemd_driver_is_a_clear_error_here() -> None:
    if cgroups.paths.systemd_running():
        pytest.skip("systemd runs on this machine; the not-running error cannot happen")
    with pytest.raises(CgroupError, match="systemd is not running"):
        cgroups.create_manager("x", None, systemd=True)


def test_nested_path_copies_cpuset_down_every_level() -> None:
    need_root()
    if not _v1_available():
        pytest.skip("this machine has no cgroup v1 hierarchies (unified-only host)")
    top = f"portside-test-{uuid.uuid4().hex[:10]}"
    m = cgroups.create_manager("ctr", f"/{top}/mid/ctr")
    assert isinstance(m, V1Manager)
    try:
        m.create()
        root = cgroups.read_mounts().v1["cpuset"]
        want = Path(root, "cpuset.cpus").read_text().strip()
        for level in (f"{top}", f"{top}/mid", f"{top}/mid/ctr"):
            assert Path(root, level, "cpuset.cpus").read_text().strip() == want
        proc = subprocess.Popen([BUSYBOX, "sleep", "60"])
        try:
            m.add_process(proc.pid)  # fails with ENOSPC if any level had no cpus
            assert m.pids() == [proc.pid]
        finally:
            proc.kill()
            proc.wait()
    finally:
        m.destroy()
        # destroy removes the container's cgroup only (as runc): the parents are ours
        for path in m.paths.values():
            for parent in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
                if os.path.isdir(parent):
                    os.rmdir(parent)
    assert not any(os.path.exists(p) for p in m.paths.values())


def test_failed_create_leaves_nothing_behind(tmp_path: Path) -> None:
    need_root()
    if not _v1_available():
        pytest.skip("this machine has no cgroup v1 hierarchies (unified-only host)")
    name = f"portside-test-{uuid.uuid4().hex[:10]}"
    m = cgroups.create_manager(name, f"/{name}")
    assert isinstance(m, V1Manager)
    # A regular file where the last controller's cgroup should go makes mkdir fail there.
    blocker = tmp_path / "not-a-cgroup"
    blocker.write_text("")
    last = list(m.paths)[-1]
    m.paths[last] = str(blocker / "ctr")
    with pytest.raises(CgroupError, match="failed to create cgroup"):
        m.create()
    for ctrl, path in m.paths.items():
        if ctrl != last:
            assert not os.path.exists(path), path


@pytest.mark.timeout(60)
def test_watch_oom_ends_when_the_cgroup_is_removed(mgr: V1Manager) -> None:
    done = threading.Event()
    seen: list[int] = []

    def watch() -> None:
        seen.extend(cgroups.watch_oom(mgr, interval=0.05))
        done.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    mgr.destroy()  # the kernel signals the eventfd when the memory cgroup goes away
    watcher.join(30)
    assert done.is_set() and seen == []


@pytest.mark.timeout(60)
def test_check_before_update_refuses_a_limit_under_usage(mgr: V1Manager) -> None:
    hold = "import sys\nx = bytearray(48 << 20)\nprint('ok', flush=True)\nsys.stdin.read()\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", hold],
        preexec_fn=lambda: _join_self(mgr),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    mgr.started.append(proc)  # type: ignore[attr-defined]
    assert proc.stdout is not None and proc.stdout.readline() == b"ok\n"
    with pytest.raises(CgroupError, match="below the current usage"):
        mgr.apply_resources({"memory": {"limit": 16 << 20, "checkBeforeUpdate": True}})
    assert int(read(mgr, "memory", "memory.limit_in_bytes")) > 1 << 60
    assert proc.poll() is None


def test_self_join_through_tasks_then_the_rest_covers_every_hierarchy(mgr: V1Manager) -> None:
    """The init's way in: it writes "0" to each v1 `tasks` file itself (no global lock),
    and the runtime moves it into the cgroup2 directory of a hybrid host."""
    files = mgr.self_join_files()
    assert files and all(f.endswith("/tasks") for f in files)
    assert {os.path.dirname(f) for f in files} == {
        p for c, p in mgr.paths.items() if c != "unified"
    }
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # single-threaded, as the init is
        os.close(w)
        try:
            for f in files:
                with open(f, "w") as fh:
                    fh.write("0")
            os.read(r, 1)
        finally:
            os._exit(0)
    os.close(r)
    try:
        deadline = time.monotonic() + 10
        while sorted(mgr.pids()) != [pid]:
            assert time.monotonic() < deadline, "the child did not join"
            time.sleep(0.01)
        mgr.add_process_except_self_joined(pid)
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        assert lines and all(line.endswith(f":/{mgr.container_id}") for line in lines), lines
    finally:
        os.close(w)
        os.waitpid(pid, 0)


def test_device_update_is_a_minimal_diff_on_the_kernel(
    mgr: V1Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second device list changes only what differs (runc's way: a running container
    never loses, even briefly, a device it keeps); the kernel ends as the model says."""
    from portside.runtime.cgroups import devices as dev
    from portside.runtime.cgroups import fscommon

    deny_all = {"allow": False, "access": "rwm"}

    def char(minor: int, access: str = "rwm", allow: bool = True) -> dict[str, object]:
        return {"allow": allow, "type": "c", "major": 10, "minor": minor, "access": access}

    mgr.apply_resources({"devices": [deny_all, char(229), char(230)]})
    before = read(mgr, "devices", "devices.list")
    written: list[tuple[str, str]] = []
    real_write_each = fscommon.write_each

    def recording(directory: str, name: str, values: Iterable[str | int]) -> None:
        values = list(values)
        written.extend((name, str(value)) for value in values)
        real_write_each(directory, name, values)

    monkeypatch.setattr(fscommon, "write_each", recording)
    second = [deny_all, char(229), char(229, "w", allow=False), char(231)]
    mgr.apply_resources({"devices": second})
    assert written == [
        ("devices.deny", "c 10:229 w"),
        ("devices.deny", "c 10:230 rwm"),
        ("devices.allow", "c 10:231 rwm"),
    ]
    expected = dev.V1State.parse_list(before)
    for r in dev.container_rules(second):
        expected.apply(r)
    got = dev.V1State.parse_list(read(mgr, "devices", "devices.list"))
    assert (got.allow, got.exceptions) == (expected.allow, expected.exceptions)
    written.clear()
    mgr.apply_resources({"devices": second})
    assert written == []


def test_device_state_model_matches_the_kernel(mgr: V1Manager) -> None:
    """V1State.apply against the real controller, write by write (deny default: listable)."""
    from portside.runtime.cgroups import devices as dev

    path = mgr.paths["devices"]
    model = dev.V1State.parse_list(read(mgr, "devices", "devices.list"))
    lines = [
        (False, "a *:* rwm"),
        (True, "c 1:3 rw"),
        (True, "c 1:3 m"),
        (True, "b 8:* rwm"),
        (False, "b 8:* w"),
        (True, "c *:* m"),
        (False, "c 1:3 rwm"),
        (False, "c 9:9 r"),
    ]
    for allow, line in lines:
        Path(path, "devices.allow" if allow else "devices.deny").write_text(line)
        dtype, majmin, access = line.split()
        major, minor = (-1 if x == "*" else int(x) for x in majmin.split(":"))
        model.apply(dev.Rule(allow, dtype, major, minor, access))
        got = dev.V1State.parse_list(read(mgr, "devices", "devices.list"))
        assert (got.allow, got.exceptions) == (model.allow, model.exceptions), line


def _destroy_on_read(mgr: V1Manager, *, at_call: int, fail: bool) -> None:
    """Make the manager's count read remove the cgroup at the given call: a race made certain."""
    real = mgr.oom_kill_count
    calls = [0]

    def read_then_remove() -> int:
        calls[0] += 1
        if calls[0] != at_call:
            return real()
        mgr.destroy()
        if fail:
            raise OSError(errno.ENODEV, "No such device")  # a read lost to the removal
        return real()

    mgr.oom_kill_count = read_then_remove  # type: ignore[method-assign]


@pytest.mark.timeout(60)
def test_watch_oom_ends_when_the_cgroup_goes_right_after_the_baseline(mgr: V1Manager) -> None:
    _destroy_on_read(mgr, at_call=1, fail=False)
    assert list(cgroups.watch_oom(mgr, interval=0.05)) == []


@pytest.mark.timeout(60)
def test_watch_oom_ends_when_a_count_read_loses_to_the_removal(mgr: V1Manager) -> None:
    _destroy_on_read(mgr, at_call=2, fail=True)
    assert list(cgroups.watch_oom(mgr, interval=0.05)) == []


def test_watch_oom_names_a_manager_without_a_memory_cgroup(mgr: V1Manager) -> None:
    memory = mgr.paths.pop("memory")
    try:
        with pytest.raises(CgroupError, match="no memory cgroup"):
            list(cgroups.watch_oom(mgr, interval=0.05))
    finally:
        mgr.paths["memory"] = memory  # so the teardown removes it

"""cgroup v2 driver against a FAKE unified hierarchy in tmp_path.

This machine's cgroup2 mount has no controllers (hybrid layout), so the v2
resource files cannot exist here. The fake is a plain directory tree with the
files the kernel would show, pre-created with the kernel's initial contents;
every test name says fake_v2.
"""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import pytest

from portside.errors import CgroupError
from portside.runtime import cgroups
from portside.runtime.cgroups.paths import Mounts
from portside.runtime.cgroups.v2 import V2Manager

CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"

LEAF_FILES = {
    "cgroup.controllers": CONTROLLERS,
    "cgroup.subtree_control": "",
    "cgroup.procs": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.type": "domain",
    "memory.max": "max",
    "memory.low": "0",
    "memory.high": "max",
    "memory.swap.max": "max",
    "memory.current": "0",
    "memory.peak": "0",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "memory.stat": "anon 0\nfile 0\n",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpu.max.burst": "0",
    "cpu.idle": "0",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "cpuset.cpus.effective": "0-1",
    "cpuset.mems.effective": "0",
    "pids.max": "max",
    "pids.current": "0",
    "io.weight": "default 100",
    "io.max": "",
    "io.stat": "",
    "hugetlb.2MB.max": "max",
    "hugetlb.2MB.current": "0",
    "hugetlb.2MB.events": "max 0\n",
    "hugetlb.1GB.max": "max",
    "hugetlb.1GB.current": "0",
    "hugetlb.1GB.events": "max 0\n",
}


def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text(CONTROLLERS + "\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("1\n")
    return root


def fake_cgroup(root: Path, rel: str) -> Path:
    """What the kernel shows in a new child: every file of the enabled controllers."""
    path = root / rel
    path.mkdir(parents=True, exist_ok=True)
    for name, content in LEAF_FILES.items():
        (path / name).write_text(content)
    return path


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, V2Manager]:
    root = fake_root(tmp_path)
    # the middle level exists as the kernel would create it on mkdir
    mid = root / "machine"
    mid.mkdir()
    (mid / "cgroup.controllers").write_text(CONTROLLERS)
    (mid / "cgroup.subtree_control").write_text("")
    fake_cgroup(root, "machine/ctr1")
    mounts = Mounts(unified=str(root))
    mgr = cgroups.create_manager("ctr1", "/machine/ctr1", mounts=mounts)
    assert isinstance(mgr, V2Manager)
    return root, mgr


def text(path: Path) -> str:
    return path.read_text().strip()


def test_fake_v2_create_enables_controllers_down_the_path(fake: tuple[Path, V2Manager]) -> None:
    root, mgr = fake
    mgr.create()
    assert mgr.path == str(root / "machine" / "ctr1")
    # every ancestor hands all its controllers down; the leaf itself is left alone
    assert text(root / "cgroup.subtree_control") == " ".join(f"+{c}" for c in CONTROLLERS.split())
    assert text(root / "machine" / "cgroup.subtree_control").startswith("+cpuset +cpu")
    assert text(root / "machine" / "ctr1" / "cgroup.subtree_control") == ""


def test_fake_v2_resources_use_v2_files_and_runc_conversions(
    fake: tuple[Path, V2Manager],
) -> None:
    root, mgr = fake
    mgr.create()
    mgr.apply_resources(
        {
            "memory": {"limit": 64 << 20, "reservation": 16 << 20, "swap": 96 << 20},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 32},
            "blockIO": {
                "weight": 500,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
            "unified": {"memory.high": "50331648"},
        }
    )
    c = root / "machine" / "ctr1"
    assert text(c / "memory.max") == str(64 << 20)
    assert text(c / "memory.low") == str(16 << 20)
    assert text(c / "memory.swap.max") == str(32 << 20)  # v2 counts swap alone
    assert text(c / "cpu.weight") == "39"  # runc: 1 + (1024-2)*9999/262142
    assert text(c / "cpu.max") == "50000 100000"
    assert text(c / "cpuset.cpus") == "0"
    assert text(c / "pids.max") == "32"
    assert text(c / "io.weight") == "4950"  # 1 + (500-10)*9999/990
    assert text(c / "io.max") == "8:0 rbps=1000"
    assert text(c / "hugetlb.2MB.max") == str(4 << 20)
    assert text(c / "memory.high") == "50331648"


def test_fake_v2_unlimited_values_are_max(fake: tuple[Path, V2Manager]) -> None:
    root, mgr = fake
    mgr.create()
    mgr.apply_resources({"memory": {"limit": -1}, "pids": {"limit": -1}, "cpu": {"quota": -1}})
    c = root / "machine" / "ctr1"
    assert text(c / "memory.max") == "max"
    assert text(c / "memory.swap.max") == "max"
    assert text(c / "pids.max") == "max"
    assert text(c / "cpu.max") == "max 100000"


def test_fake_v2_bad_resources_are_one_line(fake: tuple[Path, V2Manager]) -> None:
    _, mgr = fake
    mgr.create()
    cases = [
        ({"memory": {"swap": 1 << 20}}, "swap limit needs a memory limit"),
        ({"memory": {"limit": 2 << 20, "swap": 1 << 20}}, "should be >= memory limit"),
        ({"cpu": {"realtimeRuntime": 1000}}, "not supported on cgroup v2"),
        ({"unified": {"../escape": "1"}}, "not a cgroup file name"),
        ({"unified": {"nosuch.file": "1"}}, "nosuch controller is not available"),
        ({"network": {"classID": 1}}, "needs cgroup v1"),
        ({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}, "not a huge page size"),
    ]
    for resources, message in cases:
        with pytest.raises(CgroupError, match=message) as info:
            mgr.apply_resources(resources)
        assert "\n" not in str(info.value)


def test_fake_v2_devices_need_a_real_cgroup2_directory(fake: tuple[Path, V2Manager]) -> None:
    _, mgr = fake
    mgr.create()
    with pytest.raises(CgroupError, match="not a cgroup v2 directory"):
        mgr.apply_resources({"devices": [{"allow": False, "access": "rwm"}]})


def test_fake_v2_processes_freeze_stats_and_state(fake: tuple[Path, V2Manager]) -> None:
    root, mgr = fake
    mgr.create()
    c = root / "machine" / "ctr1"
    mgr.add_process(4242)
    assert text(c / "cgroup.procs") == "4242"
    assert mgr.pids() == [4242]
    # The kernel reports "frozen 1" in cgroup.events once every task stopped.
    (c / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    mgr.freeze()
    assert text(c / "cgroup.freeze") == "1"
    assert mgr.is_frozen()
    (c / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    mgr.thaw()
    assert not mgr.is_frozen()

    (c / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (c / "memory.current").write_text("4096\n")
    (c / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    (c / "io.stat").write_text("254:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")
    (c / "pids.current").write_text("1\n")
    stats = mgr.stats()
    json.dumps(stats)
    assert stats["cpu"]["usage"] == {"total": 1_500_000, "kernel": 500_000, "user": 1_000_000}
    assert stats["memory"]["usage"]["usage"] == 4096
    assert stats["memory"]["usage"]["failcnt"] == 3
    assert mgr.oom_kill_count() == 2
    assert stats["pids"] == {"current": 1}  # "max" limit left out, as runc's omitempty
    assert stats["memory"]["usage"]["limit"] == (1 << 64) - 1  # "max", as runc reports it
    assert stats["blkio"]["ioServiceBytesRecursive"][0] == {
        "major": 254,
        "minor": 0,
        "op": "Read",
        "value": 4096,
    }
    assert stats["cpuset"]["cpus"] == [0, 1]

    again = cgroups.CgroupManager.from_state(json.loads(json.dumps(mgr.to_state())))
    assert isinstance(again, V2Manager) and again.path == mgr.path


def test_fake_v2_freeze_that_never_completes_is_undone(
    fake: tuple[Path, V2Manager], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, mgr = fake
    mgr.create()
    monkeypatch.setattr("portside.runtime.cgroups.v2._FREEZE_TIMEOUT", 0.05)
    with pytest.raises(CgroupError, match="unable to freeze"):
        mgr.freeze()
    assert text(root / "machine" / "ctr1" / "cgroup.freeze") == "0"


def test_fake_v2_destroy_removes_the_tree(fake: tuple[Path, V2Manager]) -> None:
    root, mgr = fake
    mgr.create()
    fake_cgroup(root, "machine/ctr1/sub")
    mgr.destroy()
    assert not (root / "machine" / "ctr1").exists()
    assert (root / "machine").exists()
    mgr.destroy()  # idempotent


def test_fake_v2_watch_oom_reports_new_kills(fake: tuple[Path, V2Manager]) -> None:
    root, mgr = fake
    mgr.create()
    events = root / "machine" / "ctr1" / "memory.events"
    events.write_text("oom 1\noom_kill 1\n")  # an old kill, before watching
    stop = threading.Event()
    it = cgroups.watch_oom(mgr, stop=stop, interval=0.01)
    events.write_text("oom 2\noom_kill 3\n")
    assert next(it) == 3
    stop.set()
    assert list(it) == []


def test_fake_v2_watch_oom_ends_when_a_count_read_loses_to_the_removal(
    fake: tuple[Path, V2Manager],
) -> None:
    _, mgr = fake
    mgr.create()
    real, calls = mgr.oom_kill_count, [0]

    def read_then_remove() -> int:
        calls[0] += 1
        if calls[0] < 2:
            return real()
        mgr.destroy()
        raise OSError(errno.ENODEV, "No such device")  # a read lost to the removal

    mgr.oom_kill_count = read_then_remove  # type: ignore[method-assign]
    assert list(cgroups.watch_oom(mgr, interval=0.01)) == []
    assert calls[0] == 2


def test_fake_v2_relative_path_goes_under_the_parent_of_our_cgroup(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    mounts = Mounts(unified=str(root))
    from portside.runtime.cgroups.paths import v2_path

    assert v2_path(str(root), "ctr", {"": "/user.slice/session-1.scope"}) == str(
        root / "user.slice" / "ctr"
    )
    assert v2_path(str(root), "/abs/ctr", {"": "/user.slice/x"}) == str(root / "abs" / "ctr")
    assert mounts.mode == "v2"


def test_fake_v2_check_before_update_refuses_a_limit_under_usage(
    fake: tuple[Path, V2Manager],
) -> None:
    root, mgr = fake
    mgr.create()
    c = root / "machine" / "ctr1"
    (c / "memory.current").write_text(str(100 << 20))
    with pytest.raises(CgroupError, match="below the current usage"):
        mgr.apply_resources({"memory": {"limit": 50 << 20, "checkBeforeUpdate": True}})
    assert text(c / "memory.max") == "max"
    mgr.apply_resources({"memory": {"limit": 50 << 20}})  # without the check the kernel decides
    assert text(c / "memory.max") == str(50 << 20)

"""The v2 parts this hybrid machine does have, for real: a cgroup in the cgroup2 mount
(no controllers, but cgroup.procs, cgroup.freeze and BPF device programs are core
cgroup2 features) with the eBPF device filter loaded and attached by bpf(2).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.linux import bpf
from portside.runtime import cgroups
from portside.runtime.cgroups import bpfdev, ebpf
from portside.runtime.cgroups import devices as dev
from portside.runtime.cgroups.v2 import V2Manager
from tests.conftest import need_root

pytestmark = [pytest.mark.root, pytest.mark.cgroup]


def test_device_program_loads_into_the_kernel() -> None:
    need_root()
    rules = dev.container_rules(
        [{"allow": False, "access": "rwm"}, {"allow": True, "type": "b", "major": 8, "access": "r"}]
    )
    fd = bpfdev.load(rules)  # the verifier accepts it
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-prog"
    finally:
        os.close(fd)


@pytest.fixture
def v2cg() -> Iterator[V2Manager]:
    need_root()
    mounts = cgroups.read_mounts()
    if mounts.unified is None:
        pytest.skip("no cgroup2 mount on this machine")
    name = f"portside-test-{uuid.uuid4().hex[:10]}"
    mgr = V2Manager(os.path.join(mounts.unified, name), mounts.unified, container_id=name)
    # mkdir by hand: create() would enable controllers in the unified root, which on this
    # shared hybrid machine is a host-wide change a test must not make.
    os.mkdir(mgr.path)
    procs: list[subprocess.Popen[bytes]] = []
    mgr.started = procs  # type: ignore[attr-defined]
    try:
        yield mgr
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if mgr.is_frozen():
            mgr.thaw()
        mgr.destroy()
        assert not os.path.exists(mgr.path)


def run_in(mgr: V2Manager, script: str) -> str:
    def join() -> None:
        with open(os.path.join(mgr.path, "cgroup.procs"), "w") as f:
            f.write("0")

    proc = subprocess.Popen(
        ["/bin/busybox", "sh", "-c", script], preexec_fn=join, stdout=subprocess.PIPE
    )
    mgr.started.append(proc)  # type: ignore[attr-defined]
    out, _ = proc.communicate(timeout=30)
    return out.decode()


PROBE = (
    "for d in /dev/null /dev/zero /dev/kmsg; do "
    "head -c1 $d >/dev/null 2>&1 && echo $d:ok || echo $d:denied; done"
)


def test_device_filter_is_enforced_on_a_real_process(v2cg: V2Manager) -> None:
    assert run_in(v2cg, PROBE).split() == ["/dev/null:ok", "/dev/zero:ok", "/dev/kmsg:ok"]
    v2cg.apply_resources({"devices": [{"allow": False, "access": "rwm"}]})
    assert len(bpfdev.attached(v2cg.path)) == 1
    assert run_in(v2cg, PROBE).split() == ["/dev/null:ok", "/dev/zero:ok", "/dev/kmsg:denied"]


def test_updating_device_rules_replaces_the_program(v2cg: V2Manager) -> None:
    v2cg.apply_resources({"devices": [{"allow": False, "access": "rwm"}]})
    first = bpfdev.attached(v2cg.path)
    v2cg.apply_resources(
        {"devices": [{"allow": False, "access": "rwm"}]},
        linux_devices=[{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}],
    )
    second = bpfdev.attached(v2cg.path)
    assert len(second) == 1 and second != first
    assert run_in(v2cg, PROBE).split() == ["/dev/null:ok", "/dev/zero:ok", "/dev/kmsg:ok"]


def test_v2_core_freeze_pids_and_destroy(v2cg: V2Manager) -> None:
    proc = subprocess.Popen(["/bin/busybox", "sleep", "60"])
    v2cg.started.append(proc)  # type: ignore[attr-defined]
    v2cg.add_process(proc.pid)
    assert v2cg.pids() == [proc.pid]
    v2cg.freeze()  # waits for the kernel's "frozen 1" in cgroup.events
    assert v2cg.is_frozen()
    assert "frozen 1" in Path(v2cg.path, "cgroup.events").read_text()
    v2cg.thaw()
    assert not v2cg.is_frozen()
    proc.kill()
    proc.wait()


def test_program_query_sees_what_we_attach(v2cg: V2Manager) -> None:
    fd = bpfdev.load([dev.Rule(True)])
    dirfd = os.open(v2cg.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        bpf.prog_attach(dirfd, fd, bpf.BPF_CGROUP_DEVICE, bpf.BPF_F_ALLOW_MULTI)
        assert len(bpf.prog_query(dirfd, bpf.BPF_CGROUP_DEVICE)) == 1
        bpf.prog_detach(dirfd, fd, bpf.BPF_CGROUP_DEVICE)
        assert bpf.prog_query(dirfd, bpf.BPF_CGROUP_DEVICE) == []
    finally:
        os.close(dirfd)
        os.close(fd)
    assert ebpf.evaluate(ebpf.program([dev.Rule(True)]), "c", 1, 1, "rwm")

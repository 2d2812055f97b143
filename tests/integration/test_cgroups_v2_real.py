"""The v2 manager end to end on this host's real cgroup2 mount.

On this hybrid machine the cgroup2 hierarchy has one controller, hugetlb, so
create() (which hands controllers down each ancestor's cgroup.subtree_control),
hugepage limits, stats, freeze, device filter, processes and destroy all run
against the kernel. The host's root subtree_control is restored afterwards.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.runtime import cgroups
from portside.runtime.cgroups import bpfdev
from portside.runtime.cgroups.paths import Mounts
from portside.runtime.cgroups.v2 import V2Manager
from tests.conftest import need_root

pytestmark = [pytest.mark.root, pytest.mark.cgroup]


@pytest.fixture
def unified() -> Iterator[Path]:
    need_root()
    root = cgroups.read_mounts().unified
    if root is None:
        pytest.skip("no cgroup2 mount on this machine")
    control = Path(root, "cgroup.subtree_control")
    before = set(control.read_text().split())
    try:
        yield Path(root)
    finally:
        added = set(control.read_text().split()) - before
        for c in sorted(added):
            try:
                control.write_text(f"-{c}")
            except OSError as exc:  # another user's cgroup delegates it now: leave it on
                print(f"could not disable {c} in {control}: {exc}")


def test_v2_manager_end_to_end_on_the_real_cgroup2_mount(unified: Path) -> None:
    controllers = Path(unified, "cgroup.controllers").read_text().split()
    top = f"portside-test-{uuid.uuid4().hex[:10]}"
    mgr = cgroups.create_manager("ctr", f"/{top}/ctr", mounts=Mounts(unified=str(unified)))
    assert isinstance(mgr, V2Manager)
    proc: subprocess.Popen[bytes] | None = None
    try:
        mgr.create()
        leaf = Path(mgr.path)
        assert leaf == unified / top / "ctr" and leaf.is_dir()
        # every ancestor handed its controllers down; the leaf did not
        for c in controllers:
            assert c in (unified / "cgroup.subtree_control").read_text().split()
            assert c in (unified / top / "cgroup.subtree_control").read_text().split()
        assert (leaf / "cgroup.subtree_control").read_text().strip() == ""

        if "hugetlb" in controllers:
            mgr.apply_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 8 << 20}]})
            assert (leaf / "hugetlb.2MB.max").read_text().strip() == str(8 << 20)
            assert mgr.stats()["hugetlb"]["2MB"]["max"] == 8 << 20

        mgr.apply_resources({"devices": [{"allow": False, "access": "rwm"}]})
        assert len(bpfdev.attached(mgr.path)) == 1

        proc = subprocess.Popen(["/bin/busybox", "sleep", "60"])
        mgr.add_process(proc.pid)
        assert mgr.pids() == [proc.pid]
        assert f"0::/{top}/ctr" in Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines()
        mgr.freeze()
        assert mgr.is_frozen()
        mgr.thaw()
        assert not mgr.is_frozen()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        mgr.destroy()
        if (unified / top).exists():
            os.rmdir(unified / top)
    assert not Path(mgr.path).exists()

"""The same linux.resources through runc and through our v1 manager: the kernel files
must read the same. runc is the reference; this holds our writes against it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from portside.runtime import cgroups
from portside.runtime.cgroups.v1 import V1Manager
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.cgroup, pytest.mark.interop]

RESOURCES: dict[str, Any] = {
    "devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"},
    ],
    "memory": {
        "limit": 96 << 20,
        "reservation": 48 << 20,
        "swap": 128 << 20,
        "swappiness": 20,
        "disableOOMKiller": True,
    },
    "cpu": {
        "shares": 256,
        "quota": 30000,
        "period": 60000,
        "cpus": "0",
        "mems": "0",
        "realtimePeriod": 1000000,
        "realtimeRuntime": 2000,
    },
    "pids": {"limit": 77},
    "blockIO": {
        "weight": 250,
        "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 2097152}],
        "throttleWriteBpsDevice": [{"major": 254, "minor": 0, "rate": 1048576}],
        "throttleReadIOPSDevice": [{"major": 254, "minor": 0, "rate": 300}],
        "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 200}],
    },
}

FILES = {
    "memory": [
        "memory.limit_in_bytes",
        "memory.soft_limit_in_bytes",
        "memory.memsw.limit_in_bytes",
        "memory.swappiness",
        "memory.oom_control",
    ],
    "cpu": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.rt_runtime_us"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "pids": ["pids.max"],
    "devices": ["devices.list"],
    "blkio": [
        "blkio.bfq.weight",
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_bps_device",
        "blkio.throttle.read_iops_device",
        "blkio.throttle.write_iops_device",
    ],
}


def snapshot(paths: dict[str, str]) -> dict[str, str]:
    out = {}
    for ctrl, names in FILES.items():
        for name in names:
            f = Path(paths[ctrl], name)
            if f.exists():
                text = f.read_text()
                if name == "memory.oom_control":  # counters differ; the switch must not
                    text = text.splitlines()[0]
                if name == "devices.list":  # the kernel lists rules in the order written
                    text = "\n".join(sorted(text.splitlines()))
                out[f"{ctrl}/{name}"] = text.strip()
    return out


@pytest.mark.timeout(120)
def test_v1_files_match_runc(tmp_path: Path) -> None:
    need_root()
    runc = need_tool("runc")
    mounts = cgroups.read_mounts()
    if mounts.mode not in ("v1", "hybrid"):
        pytest.skip("this machine has no cgroup v1 hierarchies")
    if not Path("/sys/block/vda").exists():
        pytest.skip("the throttle rules name /dev/vda (254:0), which this machine lacks")

    bundle = tmp_path / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    os.symlink("busybox", bundle / "rootfs" / "bin" / "sleep")
    subprocess.run([runc, "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    theirs_path = f"/portside-test-runc-{uuid.uuid4().hex[:8]}"
    config["process"]["args"] = ["/bin/sleep", "60"]
    config["process"]["terminal"] = False
    config["linux"]["cgroupsPath"] = theirs_path
    config["linux"]["resources"] = RESOURCES
    (bundle / "config.json").write_text(json.dumps(config))

    cid = theirs_path.lstrip("/")
    state_root = str(tmp_path / "runc-state")
    ours = cgroups.create_manager("ours", f"/portside-test-ours-{uuid.uuid4().hex[:8]}")
    assert isinstance(ours, V1Manager)
    theirs = V1Manager(
        {c: os.path.join(mounts.v1[c], cid) for c in FILES if c in mounts.v1},
        container_id=cid,
    )
    try:
        # The detached container keeps runc's stdio: give it a file, not a pipe.
        with open(tmp_path / "runc.err", "w") as err:
            rc = subprocess.run(
                [runc, "--root", state_root, "run", "-d", "-b", str(bundle), cid],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                timeout=60,
            ).returncode
        assert rc == 0, (tmp_path / "runc.err").read_text()
        ours.create()
        ours.apply_resources(RESOURCES)
        want = snapshot(theirs.paths)
        got = snapshot(ours.paths)
        assert len(want) >= 15
        assert got == want
    finally:
        subprocess.run([runc, "--root", state_root, "kill", cid, "KILL"], capture_output=True)
        subprocess.run([runc, "--root", state_root, "delete", "--force", cid], capture_output=True)
        ours.destroy()
        theirs.destroy()  # runc removed it on delete; this only checks
    assert not ours.exists() and not theirs.exists()

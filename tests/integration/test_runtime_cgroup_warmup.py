"""The no-op cgroup migrations that ready the kernel leave every process where it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portside.runtime import cgroupctl
from tests.conftest import need_root

pytestmark = [pytest.mark.root, pytest.mark.cgroup, pytest.mark.timeout(60)]

SRC = str(Path(cgroupctl.__file__).parents[2])


def test_own_procs_file_lists_this_process() -> None:
    """Only a cgroup2 hierarchy is warmed up (v1 cgroups are joined through `tasks`)."""
    need_root()
    target = cgroupctl._own_procs_file()
    with open("/proc/self/mountinfo") as f:
        cgroup2 = [ln.split()[4] for ln in f if ln.partition(" - ")[2].startswith("cgroup2 ")]
    if not cgroup2:
        assert target is None
        return
    assert target is not None and target.endswith("/cgroup.procs")
    assert any(target.startswith(m + "/") for m in cgroup2), target
    pids = Path(target).read_text().split()
    assert str(os.getpid()) in pids


def test_warm_up_moves_nothing() -> None:
    """A separate process, so its thread ends with it whatever the test does."""
    need_root()
    code = (
        f"import sys, time; sys.path.insert(0, {SRC!r})\n"
        "from portside.runtime import cgroupctl\n"
        "before = open('/proc/self/cgroup').read()\n"
        "cgroupctl.warm_up()\n"
        "time.sleep(0.05)\n"
        "during = open('/proc/self/cgroup').read()\n"
        "cgroupctl.cool_down()\n"
        "time.sleep(0.01)\n"
        "print(before == during == open('/proc/self/cgroup').read())\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True", out.stderr

"""Inside a default container: capabilities, seccomp mode and masked/read-only paths as
podman's default gives them (`podman run` of the same image, compared line by line)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_tool
from tests.integration.test_engine_support import (
    IMAGE,
    RUNTIMES,
    Env,
    engine_template,
    env,
    runtime_arg,
)

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.interop, pytest.mark.timeout(150)]

PATHS = (
    "/proc/acpi /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list /proc/timer_stats "
    "/proc/sched_debug /proc/scsi /sys/firmware /sys/fs/selinux /sys/dev/block /proc/asound "
    "/proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger"
)
PROBE = (
    'grep -E "^(Cap|Seccomp|NoNewPrivs)" /proc/self/status; '
    f"for p in {PATHS}; do "
    'echo "$p $(stat -c %F $p 2>&1) $(ls $p 2>/dev/null | wc -l) '
    '$(grep " $p " /proc/self/mountinfo | cut -d" " -f6 | head -1)"; done'
)


def _podman_probe(tmp_path: Path, layout: Path) -> str:
    podman = need_tool("podman")
    base = tmp_path / "pm"
    base.mkdir()
    (base / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\nrunroot = "{base}/run"\ngraphroot = "{base}/g"\n'
    )
    hard = subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout
    (base / "containers.conf").write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={hard.strip()}:{hard.strip()}", "nproc=32768:32768"]\n'
        f'[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{base}/events.log"\n'
    )
    penv = {
        **os.environ,
        "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
        "CONTAINERS_CONF": str(base / "containers.conf"),
    }
    try:
        image = subprocess.run(
            [podman, "pull", "-q", f"oci:{layout}:latest"],
            capture_output=True,
            text=True,
            env=penv,
            check=True,
        ).stdout.strip()
        out = subprocess.run(
            [podman, "run", "--rm", "--network", "none", image, "sh", "-c", PROBE],
            capture_output=True,
            text=True,
            env=penv,
            check=True,
        ).stdout
    finally:
        subprocess.run([podman, "rmi", "-af"], capture_output=True, env=penv, check=False)
        with open("/proc/self/mountinfo") as f:
            mps = [line.split()[4] for line in f if line.split()[4].startswith(str(base))]
        for mp in sorted(mps, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)
    return out


def test_default_container_matches_podman(
    env: Env, tmp_path: Path, fixture_layouts: dict[str, Path]
) -> None:
    expected = _podman_probe(tmp_path, fixture_layouts["busybox"])
    assert "CapEff" in expected and "Seccomp:\t2" in expected
    for runtime in RUNTIMES:
        ours = env.cli("run", "--rm", "--runtime", runtime_arg(runtime), IMAGE, "sh", "-c", PROBE)
        if runtime == "crun":
            # crun mounts the masks with its own flags: compare what is masked, not how
            assert _no_flags(ours.stdout) == _no_flags(expected)
        else:
            assert ours.stdout == expected, runtime


def _no_flags(probe: str) -> list[str]:
    out = []
    for line in probe.splitlines():
        words = line.split()
        if words and words[-1].startswith(("ro,", "rw,", "ro", "rw")) and "/" in words[0]:
            words = words[:-1]
        out.append(" ".join(words))
    return out

"""Shared fixtures for the engine's and `portside run`'s integration tests.

Named test_engine_* to live with those tests; it holds no tests itself. Each
test gets its own root, seeded from a session template (busybox loaded and its
layer unpacked once) so a test pays for a copy, not for an import and an unpack.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_tool

IMAGE = "localhost/busybox:latest"
PORTSIDE = str(Path(sys.executable).parent / "portside")
RUNTIMES = ["portside-runtime", "runc", "crun"]

CRUN_WRAPPER = """#!/bin/sh
# crun 1.8 refuses this machine's hybrid cgroups: run it in a private mount namespace
# without the cgroup2 mount (the v1 view), as ../shared/bench/runtimes.sh does
exec unshare -m --propagation private sh -c \
    'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"
"""


def runtime_arg(name: str) -> str:
    """What to pass to --runtime: crun through its wrapper (written once), others by name."""
    if name != "crun":
        return name
    need_tool("crun")
    need_tool("unshare")
    path = Path(tempfile.gettempdir()) / "portside-test-crun-v1"
    if not path.exists() or path.read_text() != CRUN_WRAPPER:
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text(CRUN_WRAPPER)
        tmp.chmod(0o755)
        os.replace(tmp, path)
    return str(path)


@pytest.fixture(scope="session")
def engine_template(
    fixture_layouts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A root holding localhost/busybox:latest with its layer unpacked."""
    from portside.engine.local import LocalEngine
    from portside.images.copy import CopyOptions, copy
    from portside.images.transports.local import LocalDestination
    from portside.images.transports.oci_layout import OciLayoutSource

    base = tmp_path_factory.mktemp("engine-template")
    root = base / "root"
    engine = LocalEngine(root, base / "run", config=str(base / "none.toml"))
    dest = LocalDestination(engine.images, names=[IMAGE])
    try:
        copy(OciLayoutSource.from_dir(fixture_layouts["busybox"], "latest"), dest, CopyOptions())
    finally:
        dest.close()
    engine._unpack(engine.images.get(IMAGE))
    engine.close()
    return root


class Env:
    """One test's engine: CLI calls with its roots, and a clean-up that checks leftovers."""

    def __init__(self, root: Path, runroot: Path) -> None:
        self.root = root
        self.runroot = runroot

    def cli(
        self,
        *args: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        data = input.decode() if isinstance(input, bytes) else input
        proc = subprocess.run(
            [PORTSIDE, *args],
            input=data,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if data is not None else subprocess.DEVNULL,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"portside {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
            )
        return proc

    def inspect(self, ref: str) -> dict[str, Any]:
        doc = json.loads(self.cli("inspect", "--type", "container", ref).stdout)[0]
        assert isinstance(doc, dict)
        return doc

    def wait_for(self, what: str, cond: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def mounts_under(self, path: Path) -> list[str]:
        out = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if mp.startswith(str(path)):
                    out.append(mp)
        return out

    def engine(self) -> Any:
        from portside.engine.local import LocalEngine

        return LocalEngine(self.root, self.runroot)

    def cleanup(self) -> None:
        from portside.engine.local import LocalEngine

        engine = LocalEngine(self.root, self.runroot)
        try:
            for info in engine.list(all=True):
                with contextlib.suppress(Exception):
                    engine.remove(info.id, force=True, volumes=True)
        finally:
            engine.close()
        for pid_file in self.runroot.glob("monitor-zygote-*.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        for mp in sorted(self.mounts_under(self.root), reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)


@pytest.fixture
def env(state_roots: tuple[Path, Path], engine_template: Path) -> Iterator[Env]:
    need_tool("runc")
    root, runroot = state_roots
    shutil.rmtree(root)
    subprocess.run(["cp", "-a", str(engine_template), str(root)], check=True)
    e = Env(root, runroot)
    try:
        yield e
    finally:
        e.cleanup()


def cgroup_dirs(cid: str) -> list[str]:
    """Any cgroup directory of the container left on the v1 hierarchies (or cgroup2)."""
    out = []
    for hier in Path("/sys/fs/cgroup").iterdir():
        if (hier / "portside" / cid).exists():
            out.append(str(hier / "portside" / cid))
    return out

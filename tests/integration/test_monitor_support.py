"""Shared helpers for the monitor's integration tests: busybox bundles and started monitors.

Named test_monitor_* to live with the monitor's tests; it holds no tests itself.
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
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.monitor.client import MonitorHandle, spawn
from tests.conftest import need_root, need_tool

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "cat", "echo", "sleep", "true", "false", "tty", "stty", "head", "tr", "ls")
RUNTIMES = ["runc", "portside-runtime"]


def runtime_path(name: str) -> str:
    """runc from PATH; portside-runtime from this interpreter's scripts directory first."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return need_tool(name)


_SPEC: dict[str, Any] = {}


def base_spec() -> dict[str, Any]:
    """`runc spec`'s default config, made once per session."""
    if not _SPEC:
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["runc", "spec", "--bundle", d], check=True)
            _SPEC.update(json.loads(Path(d, "config.json").read_text()))
    return json.loads(json.dumps(_SPEC))


def make_bundle(
    where: Path,
    args: list[str],
    terminal: bool = False,
    memory_limit: int | None = None,
) -> Path:
    """A bundle whose rootfs is /bin/busybox and its applet links; no network namespace."""
    rootfs = where / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for d in ("proc", "dev", "sys", "tmp"):
        (rootfs / d).mkdir()
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    spec = base_spec()
    spec["process"]["args"] = args
    spec["process"]["terminal"] = terminal
    spec["root"]["readonly"] = False
    spec["linux"]["namespaces"] = [
        ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"
    ]
    if memory_limit is not None:
        spec["linux"].setdefault("resources", {})["memory"] = {
            "limit": memory_limit,
            "swap": memory_limit,
        }
    (where / "config.json").write_text(json.dumps(spec, indent=1))
    return where


class Monitors:
    """Starts monitors for a test and cleans up after it: monitors by PID, containers by ID."""

    def __init__(self, tmp_path: Path, runtime: str) -> None:
        self.tmp_path = tmp_path
        self.runtime = runtime_path(runtime)
        self.runtime_root = tmp_path / "rt"
        # unix socket paths are limited to 107 bytes: keep state dirs short
        self.short = Path(tempfile.mkdtemp(prefix="pm", dir="/tmp"))
        self.started: list[MonitorHandle] = []

    def config(self, args: list[str], **overrides: Any) -> dict[str, Any]:
        cid = "t" + uuid.uuid4().hex[:12]
        bundle = make_bundle(
            self.tmp_path / cid,
            args,
            terminal=overrides.pop("terminal_bundle", overrides.get("terminal", False)),
            memory_limit=overrides.pop("memory_limit", None),
        )
        state = self.short / cid
        doc: dict[str, Any] = {
            "version": 1,
            "id": cid,
            "bundle": str(bundle),
            "runtime": self.runtime,
            "runtime_args": ["--root", str(self.runtime_root)],
            "state_dir": str(state),
            "monitor_log": str(self.tmp_path / f"{cid}.monitor.log"),
            "log": {"driver": "k8s-file", "path": str(self.tmp_path / f"{cid}.log")},
        }
        doc.update(overrides)
        return doc

    def start(self, args: list[str], zygote: bool = False, **overrides: Any) -> MonitorHandle:
        handle = spawn(self.config(args, **overrides), zygote_dir=self.short if zygote else None)
        self.started.append(handle)
        return handle

    def adopt(self, handle: MonitorHandle) -> MonitorHandle:
        self.started.append(handle)
        return handle

    def runtime_state(self, cid: str) -> dict[str, Any] | None:
        result = subprocess.run(
            [self.runtime, "--root", str(self.runtime_root), "state", cid],
            capture_output=True,
            text=True,
            check=False,
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    def zygote_pids(self) -> list[int]:
        pids = []
        for p in self.short.glob("monitor-zygote-*.pid"):
            with contextlib.suppress(FileNotFoundError, ValueError):  # a zygote leaving now
                pids.append(int(p.read_text()))
        return pids

    def cleanup(self) -> None:
        for pid in self.zygote_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for handle in self.started:
            if handle.pid and handle.alive():
                os.kill(handle.pid, signal.SIGKILL)
            subprocess.run(
                [self.runtime, "--root", str(self.runtime_root), "delete", "-f", handle.id],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.short, ignore_errors=True)


@pytest.fixture(params=RUNTIMES)
def monitors(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Monitors]:
    need_root()
    m = Monitors(tmp_path, request.param)
    try:
        yield m
    finally:
        m.cleanup()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until check() is truthy; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def log_lines(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []

"""The monitor as the container's parent: detachment, OOM, restart policy, healthcheck."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portside.errors import RuntimeFailure
from portside.monitor import client, inproc
from portside.monitor.client import MonitorHandle, spawn
from tests.integration.test_monitor_support import Monitors, log_lines, monitors, wait_for

__all__ = ["monitors"]

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.timeout(120)]

TICKER = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.05; done"


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def test_killing_the_starter_does_not_touch_the_container(
    monitors: Monitors, tmp_path: Path
) -> None:
    config = monitors.config(["sh", "-c", TICKER])
    config_path = Path(config["state_dir"]) / "monitor.json"
    starter_code = (
        "import sys, time\n"
        "from portside.monitor.client import spawn\n"
        f"h = spawn({config!r}, {str(config_path)!r})\n"
        "print(h.pid, h.init_pid, flush=True)\n"
        "time.sleep(1000)\n"
    )
    starter = subprocess.Popen([sys.executable, "-c", starter_code], stdout=subprocess.PIPE)
    try:
        monitor_pid, init_pid = map(int, starter.stdout.readline().split())  # type: ignore[union-attr]
    finally:
        starter.kill()  # SIGKILL, as a crashed CLI
        starter.wait()
        if starter.stdout:
            starter.stdout.close()
    handle = monitors.adopt(MonitorHandle.load(config_path))
    assert (handle.pid, handle.init_pid) == (monitor_pid, init_pid)
    assert handle.alive()
    # the monitor is the container's parent and nobody's child among the portside processes
    assert _ppid(init_pid) == monitor_pid
    assert _ppid(monitor_pid) != starter.pid
    assert os.getsid(monitor_pid) != os.getsid(0)  # its own session
    # and it keeps logging after the starter died
    seen = len(log_lines(handle.config.log_path))
    wait_for(lambda: len(log_lines(handle.config.log_path)) > seen + 5, "more log lines")
    assert monitors.runtime_state(handle.id)["status"] == "running"  # type: ignore[index]
    handle.stop("KILL")
    assert handle.wait(timeout=60).exit_code == 137


def test_reopen_log_after_an_external_rotation(monitors: Monitors, tmp_path: Path) -> None:
    handle = monitors.start(["sh", "-c", TICKER])
    log = Path(handle.config.log_path)
    wait_for(lambda: len(log_lines(log)) > 3, "first lines")
    log.rename(tmp_path / "rotated.log")
    handle.reopen_log()
    wait_for(lambda: len(log_lines(log)) > 3, "lines in the reopened log")
    last_rotated = int(log_lines(tmp_path / "rotated.log")[-1].rsplit("-", 1)[1])
    first_new = int(log_lines(log)[0].rsplit("-", 1)[1])
    assert first_new == last_rotated + 1  # nothing lost, nothing doubled
    handle.stop("KILL")
    handle.wait(timeout=60)


@pytest.mark.cgroup
def test_memory_hog_is_recorded_as_oom_killed(monitors: Monitors) -> None:
    hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"
    handle = monitors.start(["sh", "-c", hog], memory_limit=20 * 1024 * 1024)
    status = handle.wait(timeout=90)
    assert status.oom_killed, status
    assert status.exit_code != 0
    assert not any("survived" in line for line in log_lines(handle.config.log_path))


def test_a_normal_exit_is_not_oom(monitors: Monitors) -> None:
    handle = monitors.start(["sh", "-c", "exit 0"], memory_limit=20 * 1024 * 1024)
    status = handle.wait(timeout=60)
    assert (status.exit_code, status.oom_killed) == (0, False)


def test_restart_on_failure_2_restarts_exactly_twice(monitors: Monitors) -> None:
    handle = monitors.start(
        ["sh", "-c", "echo run; exit 1"],
        restart={"policy": "on-failure", "max_retries": 2, "backoff": 0.05},
    )
    status = handle.wait(timeout=60)
    assert (status.exit_code, status.restart_count) == (1, 2)
    runs = [line for line in log_lines(handle.config.log_path) if line.endswith("F run")]
    assert len(runs) == 3
    state = json.loads(Path(handle.config.state_file).read_text())
    assert state["restart_count"] == 2 and state["status"] == "exited"


def test_on_failure_does_not_restart_a_success(monitors: Monitors) -> None:
    handle = monitors.start(["sh", "-c", "echo run"], restart="on-failure:5")
    status = handle.wait(timeout=60)
    assert (status.exit_code, status.restart_count) == (0, 0)


def test_always_restarts_until_stopped(monitors: Monitors) -> None:
    handle = monitors.start(
        ["sh", "-c", "echo run; sleep 0.1"], restart={"policy": "always", "backoff": 0.05}
    )
    wait_for(lambda: (handle.state() or {}).get("restart_count", 0) >= 2, "two restarts")
    handle.stop("KILL", timeout=1)
    status = handle.wait(timeout=60)
    assert status.restart_count >= 2
    assert handle.state()["status"] == "exited"  # type: ignore[index]


def test_failing_healthcheck_turns_unhealthy_after_retries(monitors: Monitors) -> None:
    handle = monitors.start(
        ["sleep", "1000"],
        healthcheck={
            "test": ["CMD-SHELL", "echo probing; exit 1"],
            "interval": 0.1,
            "timeout": 10,
            "retries": 3,
        },
    )
    health = wait_for(
        lambda: (h := handle.health()) and h["status"] != "starting" and h, "a health verdict"
    )
    # three failures are needed: the first verdict is unhealthy with a streak of exactly 3
    assert health["status"] == "unhealthy"
    assert health["failing_streak"] == 3
    assert [entry["exit_code"] for entry in health["log"]] == [1, 1, 1]
    assert "probing" in health["log"][-1]["output"]
    assert handle.status()["health"] == "unhealthy"
    handle.stop("KILL")
    handle.wait(timeout=60)


def test_passing_healthcheck_is_healthy(monitors: Monitors) -> None:
    handle = monitors.start(
        ["sleep", "1000"],
        healthcheck={"test": ["CMD", "true"], "interval": 0.1, "timeout": 10, "retries": 1},
    )
    health = wait_for(lambda: (h := handle.health()) and h["status"] == "healthy" and h, "healthy")
    assert health["failing_streak"] == 0
    assert health["log"][-1]["exit_code"] == 0
    handle.stop("KILL")
    handle.wait(timeout=60)


def test_resident_monitor_stays_small(monitors: Monitors) -> None:
    handle = monitors.start(["sleep", "1000"], terminal=False)
    modules = set(handle.control({"op": "modules"})["modules"])
    heavy = {"click", "rich", "httpx", "json", "re", "subprocess", "threading", "socket", "enum"}
    assert not heavy & modules, heavy & modules
    assert not {m for m in modules if m.startswith(("portside.engine", "portside.cli", "ctypes"))}
    handle.stop("KILL")
    handle.wait(timeout=60)


def test_monitor_pid_file_and_signal_isolation(monitors: Monitors) -> None:
    handle = monitors.start(["sleep", "1000"])
    pid_file = Path(handle.config.monitor_pid_file)
    assert int(pid_file.read_text()) == handle.pid
    # SIGHUP or SIGINT to the engine's process group never reaches the monitor: own session
    assert os.getsid(handle.pid) != os.getsid(0)
    os.kill(handle.init_pid, signal.SIGKILL)
    assert handle.wait(timeout=60).exit_code == 137


def test_zygote_forks_monitors_that_outlive_it(monitors: Monitors) -> None:
    first = monitors.start(["sh", "-c", TICKER], zygote=True)
    second = monitors.start(["sh", "-c", "echo from-second; exit 5"], zygote=True)
    (zygote,) = monitors.zygote_pids()
    assert zygote not in (first.pid, second.pid)
    assert _ppid(first.pid) != zygote  # the forker's child (or init's), in its own session
    assert os.getsid(first.pid) == first.pid
    assert _ppid(first.init_pid) == first.pid
    assert second.wait(timeout=60).exit_code == 5
    wait_for(lambda: not second.alive(), "the second monitor to be reaped, not left a zombie")
    assert any(line.endswith("F from-second") for line in log_lines(second.config.log_path))
    os.kill(zygote, signal.SIGKILL)
    seen = len(log_lines(first.config.log_path))
    wait_for(lambda: len(log_lines(first.config.log_path)) > seen + 5, "logging after the kill")
    assert first.status()["status"] == "running"
    # the next spawn finds the zygote gone and starts a fresh one
    third = monitors.start(["sh", "-c", "exit 0"], zygote=True)
    assert third.wait(timeout=60).exit_code == 0
    assert zygote not in monitors.zygote_pids()
    first.stop("KILL")
    assert first.wait(timeout=60).exit_code == 137


def test_zygote_leaves_when_idle(monitors: Monitors, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "ZYGOTE_IDLE", 0.2)
    handle = monitors.start(["sleep", "1000"], zygote=True)
    wait_for(lambda: not monitors.zygote_pids(), "the idle zygote to leave")
    assert not [p for p in monitors.short.glob("monitor-zygote-*") if p.suffix != ".lock"]
    assert handle.status()["status"] == "running"
    handle.stop("KILL")
    handle.wait(timeout=60)


def test_zygote_reports_runtime_errors_like_a_direct_start(monitors: Monitors) -> None:
    with pytest.raises(RuntimeFailure, match="/no/such/program"):
        monitors.start(["/no/such/program"], zygote=True)


def test_exit_command_runs_once_after_the_last_exit(monitors: Monitors, tmp_path: Path) -> None:
    marker = tmp_path / "cleanup.txt"
    script = f'echo "$PORTSIDE_CONTAINER_ID $PORTSIDE_EXIT_CODE $1" >> {marker}'
    handle = monitors.start(
        ["sh", "-c", "exit 2"],
        restart={"policy": "on-failure", "max_retries": 1, "backoff": 0.05},
        exit_command=["/bin/sh", "-c", script, "sh", "cleanup"],
    )
    status = handle.wait(timeout=60)
    assert (status.exit_code, status.restart_count) == (2, 1)
    # the command is detached: wait for its line, then make sure it is the only one
    wait_for(lambda: log_lines(marker), "the exit command's line")
    wait_for(lambda: not handle.alive(), "the monitor to leave")
    assert log_lines(marker) == [f"{handle.id} 2 cleanup"]


def test_parallel_spawns_share_one_zygote(monitors: Monitors) -> None:
    configs = [monitors.config(["sh", "-c", f"echo hello-{i}; exec sleep 1000"]) for i in range(8)]
    with ThreadPoolExecutor(len(configs)) as pool:
        handles = list(pool.map(lambda c: spawn(c, zygote_dir=monitors.short), configs))
    for handle in handles:
        monitors.adopt(handle)
    assert len(monitors.zygote_pids()) == 1
    assert len({h.init_pid for h in handles}) == len(handles)
    for i, handle in enumerate(handles):
        path = handle.config.log_path
        wait_for(lambda p=path, i=i: f"F hello-{i}" in "".join(log_lines(p)), f"hello-{i}")
        assert handle.status()["status"] == "running"


def test_zygote_checks_the_config_before_it_forks(monitors: Monitors, tmp_path: Path) -> None:
    """The zygote validates the config before it forks: one error line, and it lives on."""
    first = monitors.start(["sleep", "1000"], zygote=True)
    (zygote,) = monitors.zygote_pids()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(Path(first.config_path).read_text()), "version": 7}))
    read_end, write_end = os.pipe()
    try:
        request = json.dumps({"config": str(bad)}).encode()
        assert client._send_to_zygote(client.zygote_socket(monitors.short), request, write_end)
        os.close(write_end)
        write_end = -1
        with os.fdopen(read_end, "rb") as reply:
            read_end = -1
            lines = reply.read().splitlines()
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    assert [json.loads(line) for line in lines] == [
        {"error": "monitor config version 7: this monitor reads version 1"}
    ]
    second = monitors.start(["sh", "-c", "exit 3"], zygote=True)
    assert monitors.zygote_pids() == [zygote]  # the same zygote forked it: it lived on
    assert second.wait(timeout=60).exit_code == 3
    first.stop("KILL")
    first.wait(timeout=60)


def test_a_zygote_whose_waiter_died_serves_anyway(monitors: Monitors) -> None:
    """A successor zygote whose predecessor was killed during the hand-over cannot report
    ready (EPIPE); it owns the socket's name by then, so it must serve all the same."""
    ready_r, ready_w = os.pipe()
    os.close(ready_r)  # the one waiting for "ready" is gone before the zygote reports
    try:
        argv = [sys.executable, "-I", "-S", "-c", client._ZYGOTE_BOOT]
        path = client.zygote_socket(monitors.short)
        starter = subprocess.Popen(
            [*argv, str(path), str(ready_w), "60"],
            pass_fds=(ready_w,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, inproc.PRELOAD_ENV: "1"},  # a successor: it hands over no further
        )
        assert starter.wait(timeout=30) == 0  # it forks away at once
    finally:
        os.close(ready_w)
    wait_for(lambda: bool(monitors.zygote_pids()), "the zygote's pid file")
    (zygote,) = monitors.zygote_pids()
    handle = monitors.start(["sh", "-c", "exit 4"], zygote=True)
    assert handle.wait(timeout=60).exit_code == 4
    assert monitors.zygote_pids() == [zygote]  # served by it, not by a fresh one
    os.kill(zygote, 0)  # and it lives on

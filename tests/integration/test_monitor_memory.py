"""What keeps a zygote-forked monitor small: it imports nothing and starts no thread.

Each monitor forked from the zygote shares the zygote's pages until it writes
them; an import after the fork (or a thread and its stack) would be paid again
by every container. These scenarios drive every path a resident monitor runs
(output, attach, stdin, resize, healthcheck probes, restarts, control ops) and
then compare its modules with the zygote's. The memory figures themselves are
benchmarks/bench_monitor.py's, not a test's.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from portside.monitor.client import MonitorHandle
from tests.integration.test_monitor_support import Monitors, log_lines, monitors, wait_for

__all__ = ["monitors"]

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.timeout(120)]


def _assert_lean(handle: MonitorHandle) -> None:
    reply = handle.control({"op": "modules"})
    assert reply["zygote_modules"] is not None, "not forked from the zygote"
    assert reply["modules"] == reply["zygote_modules"]
    assert os.listdir(f"/proc/{handle.pid}/task") == [str(handle.pid)]  # one thread


def test_pipes_attach_stdin_and_healthcheck_import_nothing(monitors: Monitors) -> None:
    handle = monitors.start(
        ["sh", "-c", "read line; echo got-$line; exec sleep 1000"],
        zygote=True,
        stdin=True,
        defer_start=True,
        healthcheck={"test": ["CMD", "true"], "interval": 0.1, "retries": 1},
    )
    with handle.attach() as conn:
        handle.start()
        conn.send(b"ping\n")
        conn.read_until(b"got-ping")
    wait_for(lambda: (handle.health() or {}).get("status") == "healthy", "a healthy probe")
    handle.reopen_log()
    handle.status()
    _assert_lean(handle)
    handle.stop("KILL")
    handle.wait(timeout=60)


def test_restarts_import_nothing(monitors: Monitors) -> None:
    handle = monitors.start(
        ["sh", "-c", "echo run; sleep 0.2; exit 1"],
        zygote=True,
        restart={"policy": "always", "backoff": 0.05},
    )
    wait_for(lambda: (handle.state() or {}).get("restart_count", 0) >= 2, "two restarts")
    _assert_lean(handle)
    handle.stop("KILL")
    handle.wait(timeout=60)


def test_a_pty_and_resize_import_nothing(monitors: Monitors) -> None:
    handle = monitors.start(
        ["sh", "-c", "stty size; read x; stty size; exec sleep 1000"],
        zygote=True,
        terminal=True,
        stdin=True,
        defer_start=True,
    )
    with handle.attach() as conn:
        handle.start()
        conn.read_until(b"\n")
        handle.resize(33, 77)
        conn.send(b"\r")
        conn.read_until(b"33 77")
    assert any("33 77" in line for line in log_lines(handle.config.log_path))
    _assert_lean(handle)
    handle.stop("KILL")
    handle.wait(timeout=60)


def test_only_a_portside_runtime_zygote_loads_the_runtime(monitors: Monitors) -> None:
    """Only portside-runtime's containers get a zygote that loaded it (see also below)."""
    first = monitors.start(["true"], zygote=True)
    assert first.wait(timeout=60).exit_code == 0

    def next_loaded() -> bool:
        handle = monitors.start(["sleep", "1000"], zygote=True)
        reply = handle.control({"op": "modules"})
        _assert_lean(handle)
        handle.stop("KILL")
        handle.wait(timeout=60)
        return "portside.runtime.cli.create" in reply["zygote_modules"]

    if monitors.runtime.endswith("portside-runtime"):
        # the hand-over runs beside the first container: a later one is forked by the new zygote
        wait_for(next_loaded, "a monitor from the zygote that loaded the runtime")
    else:
        assert not next_loaded()
        assert not next_loaded()
    assert len(monitors.zygote_pids()) == 1


def test_a_zygote_started_for_portside_runtime_loads_it_at_once(monitors: Monitors) -> None:
    """No hand-over: its first monitor would be left alone holding the first zygote's image."""
    handle = monitors.start(["sleep", "1000"], zygote=True)
    reply = handle.control({"op": "modules"})
    own = monitors.runtime.endswith("portside-runtime")
    assert ("portside.runtime.cli.create" in reply["zygote_modules"]) == own
    handle.stop("KILL")
    handle.wait(timeout=60)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_monitors_come_from_the_forker_and_the_zygote_forks_when_it_is_gone(
    monitors: Monitors,
) -> None:
    """The zygote's one child forks the monitors; without it the zygote forks them itself."""
    first = monitors.start(["sleep", "1000"], zygote=True)
    _assert_lean(first)

    def zygote_and_forker() -> tuple[int, int] | None:
        # with portside-runtime the first container hands the zygote over to a successor
        pids = monitors.zygote_pids()
        kids = _children(pids[0]) if len(pids) == 1 else []
        return (pids[0], kids[0]) if len(kids) == 1 else None

    zygote, forker = wait_for(zygote_and_forker, "one zygote and its forker")
    # the monitor was forked by the forker's child: same session as that child made, not ours
    assert os.getsid(first.pid) not in (os.getsid(zygote), os.getsid(0))
    os.kill(forker, signal.SIGKILL)
    wait_for(lambda: _state(forker) in ("Z", ""), "the forker to die")
    second = monitors.start(["sleep", "1000"], zygote=True)
    _assert_lean(second)
    assert _children(zygote) == []  # the dead forker was reaped, no new one
    for handle in (first, second):
        handle.stop("KILL")
        assert handle.wait(timeout=60).signal == 9


def test_the_forker_leaves_with_its_zygote(monitors: Monitors) -> None:
    """Its socket hung up and empty, the forker exits (and does not fork on every wake-up)."""
    handle = monitors.start(["sleep", "1000"], zygote=True)
    (zygote,) = monitors.zygote_pids()
    (forker,) = wait_for(lambda: _children(zygote), "the zygote's forker")
    os.kill(zygote, signal.SIGKILL)
    wait_for(lambda: _state(forker) in ("Z", ""), "the forker to leave")
    assert handle.alive()  # the monitor is nobody's child but init's: it stays
    handle.stop("KILL")
    assert handle.wait(timeout=60).signal == 9


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return ""

"""Attach through the monitor's socket: several clients, stdin, detach keys, a real pty."""

from __future__ import annotations

import re

import pytest

from portside.monitor import protocol
from tests.integration.test_monitor_support import Monitors, log_lines, monitors

__all__ = ["monitors"]

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.timeout(120)]


def test_two_clients_see_output_and_stdin_reaches_cat(monitors: Monitors) -> None:
    handle = monitors.start(["cat"], stdin=True)
    with handle.attach() as a, handle.attach() as b:
        a.send(b"hello from a\n")
        assert b"hello from a" in a.read_until(b"hello from a")
        assert b"hello from a" in b.read_until(b"hello from a")
        b.send(b"and from b\n")
        a.read_until(b"and from b")
        b.close_stdin()  # cat sees EOF and exits 0
        status = handle.wait(timeout=60)
        assert status.exit_code == 0
        # every client is told the exit, then the connection closes
        kinds = []
        while (packet := a.recv(timeout=30)) is not None:
            kinds.append(packet[0])
        assert kinds[-1] == protocol.EXIT
    lines = log_lines(handle.config.log_path)
    assert any(line.endswith("stdout F hello from a") for line in lines)


def test_detach_keys_leave_the_container_running(monitors: Monitors) -> None:
    handle = monitors.start(["cat"], stdin=True)
    with handle.attach() as a, handle.attach() as b:
        a.send(b"one\n")
        b.read_until(b"one")
        a.detach()
        packets = []
        while (packet := a.recv(timeout=30)) is not None:
            packets.append(packet)
        assert packets[-1] == (protocol.DETACHED, b"")
        # the container is untouched and the other client still works
        assert monitors.runtime_state(handle.id)["status"] == "running"  # type: ignore[index]
        assert handle.status()["status"] == "running"
        b.send(b"two\n")
        b.read_until(b"two")
    # a new client can attach after the first ones left
    with handle.attach() as c:
        # ctrl-p followed by anything but ctrl-q is passed through to the container
        c.send(b"x\x10y\n")
        assert b"x\x10y" in c.read_until(b"y\n")
        c.close_stdin()
    assert handle.wait(timeout=60).exit_code == 0


def test_terminal_is_a_real_pty_and_resizes(monitors: Monitors) -> None:
    handle = monitors.start(["sh"], terminal=True, stdin=True, attach_replay=4096)
    with handle.attach() as a:
        a.send(b"tty; echo done-$((1+1))\n")  # the echoed command line lacks "done-2"
        out = a.read_until(b"done-2")
        assert re.search(rb"\n/dev/pts/\d+\r?\n", out), out
        handle.resize(31, 97)  # through the control socket
        a.send(b"stty size\n")
        assert b"31 97" in a.read_until(b"31 97")
        a.resize(42, 123)  # through the attach connection
        a.send(b"stty size\n")
        assert b"42 123" in a.read_until(b"42 123")
        a.detach()
        while a.recv(timeout=30) is not None:
            pass
    assert handle.status()["status"] == "running"
    with handle.attach() as b:
        # a new client first gets the recent output replayed (attach_replay)
        b.read_until(b"42 123")
        b.send(b"echo still-$((40+2))\n")
        b.read_until(b"still-42")
        b.send(b"exit 7\n")
        assert handle.wait(timeout=60).exit_code == 7
    # a pty merges the streams: everything is logged as stdout
    assert any(
        "stdout" in line and "still-42" in line for line in log_lines(handle.config.log_path)
    )


def test_stdin_once_closes_stdin_when_the_writer_vanishes(monitors: Monitors) -> None:
    handle = monitors.start(["cat"], stdin=True, stdin_once=True)
    watcher = handle.attach()
    writer = handle.attach()
    writer.send(b"last words\n")
    watcher.read_until(b"last words")
    writer.close()  # no close-stdin packet: as a CLI killed mid-way
    assert handle.wait(timeout=60).exit_code == 0  # cat saw EOF
    watcher.close()


def test_without_stdin_once_a_vanished_writer_leaves_stdin_open(monitors: Monitors) -> None:
    handle = monitors.start(["cat"], stdin=True)
    with handle.attach() as writer:
        writer.send(b"first\n")
        writer.read_until(b"first")
    with handle.attach() as again:
        again.send(b"second\n")  # stdin is still open: cat still reads
        again.read_until(b"second")
        again.close_stdin()
    assert handle.wait(timeout=60).exit_code == 0


def test_defer_start_lets_a_client_attach_before_any_output(monitors: Monitors) -> None:
    handle = monitors.start(["sh", "-c", "echo first-line; exit 4"], defer_start=True)
    assert handle.state()["status"] == "created"  # type: ignore[index]
    assert monitors.runtime_state(handle.id)["status"] == "created"  # type: ignore[index]
    with handle.attach() as a:
        assert handle.start() == handle.init_pid
        a.read_until(b"first-line")  # no replay configured: it saw it live
    assert handle.wait(timeout=60).exit_code == 4


def test_stopping_a_created_container_ends_the_monitor(monitors: Monitors) -> None:
    handle = monitors.start(["sleep", "1000"], defer_start=True, restart="always")
    handle.stop("KILL")
    status = handle.wait(timeout=60)
    assert (status.exit_code, status.restart_count, status.started_at) == (137, 0, "")
    assert monitors.runtime_state(handle.id) is None

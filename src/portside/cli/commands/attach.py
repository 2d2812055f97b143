"""`portside attach`: the terminal (or the stdio) of a running container, through its
monitor's attach socket; ctrl-p ctrl-q detaches and leaves it running."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from portside.cli.commands.create import get_engine

if TYPE_CHECKING:
    from portside.monitor.client import AttachConnection


def window_size(fd: int) -> tuple[int, int] | None:
    import fcntl
    import struct
    import termios

    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, cols = struct.unpack("HHHH", packed)[:2]
    return (rows, cols) if rows and cols else None


@contextlib.contextmanager
def raw_terminal(fd: int, enabled: bool) -> Iterator[None]:
    """The local terminal in raw mode while attached to a container's pty."""
    if not enabled or not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay(conn: AttachConnection, *, stdin: bool, tty: bool) -> tuple[str, dict[str, Any] | None]:
    """Copy between our stdio and the attach socket: ("exit", exit doc) when the container
    ended, ("detached", None) on ctrl-p ctrl-q, ("closed", None) if the monitor went away."""
    from portside.monitor import protocol

    in_fd = sys.stdin.fileno() if stdin else -1
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    resized = [True]
    old_handler = None
    if tty and os.isatty(0):
        old_handler = signal.signal(signal.SIGWINCH, lambda *_: resized.__setitem__(0, True))
    try:
        with raw_terminal(0, tty and stdin):
            while True:
                if resized[0] and tty:
                    resized[0] = False
                    size = window_size(0) or window_size(1)
                    if size:
                        with contextlib.suppress(OSError):
                            conn.resize(*size)
                fds = [conn.fileno()] + ([in_fd] if in_fd >= 0 else [])
                try:
                    ready, _, _ = select.select(fds, [], [], 1.0)
                except InterruptedError:
                    continue
                if in_fd in ready:
                    data = os.read(in_fd, 32768)
                    if data:
                        conn.send(data)
                    else:
                        conn.close_stdin()
                        in_fd = -1
                if conn.fileno() in ready:
                    packet = conn.recv()
                    if packet is None:
                        return "closed", None
                    kind, payload = packet
                    if kind == protocol.STDOUT:
                        out.write(payload)
                        out.flush()
                    elif kind == protocol.STDERR:
                        err.write(payload)
                        err.flush()
                    elif kind == protocol.EXIT:
                        try:
                            doc = json.loads(payload or b"{}")
                        except ValueError:
                            doc = {}
                        return "exit", doc if isinstance(doc, dict) else {}
                    elif kind == protocol.DETACHED:
                        return "detached", None
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGWINCH, old_handler)


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("--no-stdin", is_flag=True, help="Do not attach stdin.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Accepted for compatibility.")
@click.argument("container")
def attach(container: str, no_stdin: bool, sig_proxy: bool) -> None:
    """Attach to a running container's input and output (detach: ctrl-p ctrl-q)."""
    engine = get_engine()
    doc = engine.record(container)
    handle = engine.handle(doc["id"])
    tty = bool(doc["options"].get("tty"))
    with handle.attach() as conn:
        how, exit_doc = relay(conn, stdin=not no_stdin, tty=tty)
    if how == "detached":
        click.echo("", err=True)
        return
    if how == "exit" and exit_doc is not None:
        sys.exit(int(exit_doc.get("exit_code", 0)))
    sys.exit(engine.wait(doc["id"]))

"""Terminals: a pty from the container's own devpts, its master handed out with SCM_RIGHTS.

As runc: the init opens the pty, connects to `--console-socket` and sends the
master fd (the message data is the pty's name); the slave becomes the
process's stdio and controlling terminal and is bind-mounted on /dev/console.
"""

from __future__ import annotations

import fcntl
import os
import struct

from portside.errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414


def open_pty(ptmx: str) -> tuple[int, str]:
    """Open a new pty on the devpts instance of `ptmx`; returns (master fd, slave path)."""
    try:
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"open {ptmx}: {(e.strerror or '').lower()}") from None
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    # /dev/ptmx is usually a link to pts/ptmx; a real /dev/ptmx node serves /dev/pts
    pts = os.path.dirname(os.path.realpath(ptmx))
    if os.path.basename(pts) != "pts":
        pts = os.path.join(pts, "pts")
    return master, os.path.join(pts, str(n))


def connect(socket_path: str) -> Any:
    """Connect while the caller's filesystem is still in sight (before pivot or setns)."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(socket_path)
    except OSError as e:
        s.close()
        raise RuntimeFailure(
            f"failed to connect to the console socket {socket_path}: "
            f"{(e.strerror or str(e)).lower()}"
        ) from None
    return s


def send_master(sock: Any, master: int, name: str) -> None:
    import socket

    try:
        socket.send_fds(sock, [name.encode()], [master])
    except OSError as e:
        raise RuntimeFailure(
            f"failed to send the console: {(e.strerror or str(e)).lower()}"
        ) from None
    finally:
        sock.close()


def attach(slave_path: str, size: tuple[int, int] | None) -> None:
    """Make the slave our stdio and controlling terminal (we are a session leader)."""
    fd = os.open(slave_path, os.O_RDWR)
    if size is not None and size[0] and size[1]:
        fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    for target in (0, 1, 2):
        os.dup2(fd, target)
    fcntl.ioctl(0, TIOCSCTTY, 0)
    if fd > 2:
        os.close(fd)


def recv_master(sock: object) -> int:
    """The receiving side (for callers and tests): one fd from one message."""
    import socket

    assert isinstance(sock, socket.socket)
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise RuntimeFailure("no file descriptor on the console socket")
    return fds[0]


class Proxy:
    """Foreground `run`/`exec` with a terminal and no --console-socket: like runc, the
    runtime takes the pty master itself and copies between it and its own stdio."""

    def __init__(self) -> None:
        import socket
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="portside-console-")
        self.path = os.path.join(self.dir, "console.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)

    def master(self) -> int:
        conn, _ = self.server.accept()
        try:
            return recv_master(conn)
        finally:
            conn.close()
            self.close()

    def close(self) -> None:
        self.server.close()
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass

    @staticmethod
    def pump(master: int) -> None:
        """Copy stdin -> pty and pty -> stdout until the container side hangs up."""
        import select
        import termios
        import tty

        saved = None
        if os.isatty(0):
            saved = termios.tcgetattr(0)
            tty.setraw(0)
            try:
                size = fcntl.ioctl(0, 0x5413, b"\0" * 8)  # TIOCGWINSZ
                fcntl.ioctl(master, TIOCSWINSZ, size)
            except OSError:
                pass
        inputs = [0, master]
        try:
            while True:
                try:
                    ready, _, _ = select.select(inputs, [], [])
                except InterruptedError:
                    continue
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    os.write(1, data)
                if 0 in ready:
                    data = os.read(0, 65536)
                    if not data:
                        inputs.remove(0)
                        os.write(master, b"\x04")
                    else:
                        os.write(master, data)
        finally:
            if saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            os.close(master)

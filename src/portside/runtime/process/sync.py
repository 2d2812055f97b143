"""Typed messages between the runtime and its children, as JSON lines over pipes.

Each side owns one read and one write end; a child that dies mid-setup closes
its ends, which the parent reads as EOF instead of hanging.
"""

from __future__ import annotations

import posix

from portside.runtime import fastjson

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any

# message types
HELLO = "hello"  # stage 1 -> parent: in its v1 cgroups (and its own user ns if asked)
GO = "go"  # parent -> stage 1: maps written, cgroup joined
PID = "pid"  # stage 1 -> parent: the init's pid in the parent's pid namespace
HOOKS = "hooks"  # init -> parent: mounts done, run prestart/createRuntime
OK = "ok"  # parent -> init: carry on
READY = "ready"  # init -> parent: blocked on the exec fifo (or about to exec)
START = "start"  # parent -> init: `run` starts it this way, without an exec fifo
ERROR = "error"  # child -> parent: setup failed, with the message
EOF = "eof"


class Channel:
    """One direction in, one out; messages are single JSON lines."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self._buf = b""
        self._pending: list[dict[str, Any]] = []

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        """(parent side, child side)."""
        r1, w1 = posix.pipe()
        r2, w2 = posix.pipe()
        return cls(r1, w2), cls(r2, w1)

    def send(self, kind: str, **fields: Any) -> None:
        fields["t"] = kind
        data = fastjson.dumps(fields).encode() + b"\n"
        while data:
            data = data[posix.write(self.wfd, data) :]

    def push_back(self, msg: dict[str, Any]) -> None:
        """Keep a message that overtook the one being waited for (two writers share a pipe)."""
        self._pending.append(msg)

    def recv(self) -> dict[str, Any]:
        if self._pending:
            return self._pending.pop(0)
        while b"\n" not in self._buf:
            chunk = posix.read(self.rfd, 65536)
            if not chunk:
                return {"t": EOF}
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        msg = fastjson.loads(line)
        assert isinstance(msg, dict)
        return msg

    def expect(self, kind: str) -> dict[str, Any]:
        """Receive one message; a child's error becomes our exception."""
        from portside.errors import RuntimeFailure

        msg = self.recv()
        if msg["t"] == ERROR:
            raise RuntimeFailure(str(msg.get("msg")))
        if msg["t"] == EOF:
            raise RuntimeFailure("container init exited before it was set up")
        if msg["t"] != kind:
            raise RuntimeFailure(f"unexpected message {msg['t']!r} from container init")
        return msg

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:  # noqa: SIM105 - contextlib costs start-up time
                posix.close(fd)
            except OSError:
                pass

"""Container log writers: the CRI format (k8s-file) and docker's json-file, with rotation.

Each chunk read from the container is split into lines when it is written: a
trailing piece without a newline is written at once, marked partial (CRI "P",
or a json-file entry whose "log" lacks the newline), so nothing waits in the
monitor's memory and a reader sees output as soon as the container writes it.
"""

# ruff: noqa: SIM105  (contextlib would load functools and collections into every monitor)
from __future__ import annotations

import _json
import os
from abc import ABC, abstractmethod  # abc is loaded at interpreter start: no cost

from portside.monitor.files import rfc3339nano

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


class LogWriter(ABC):
    """Appends formatted entries to one file and rotates it at `max_size` bytes."""

    def __init__(self, path: str, max_size: int = 0, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
        self.fd = -1
        self.size = 0
        self.reopen()

    def reopen(self) -> None:
        """Open the path afresh: after rotation, or after someone moved the file away."""
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = os.open(self.path, _OPEN_FLAGS, 0o640)
        try:  # the size without a stat result's twenty fields (new objects in every monitor)
            self.size = os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:  # not seekable (a FIFO): nothing to rotate by
            self.size = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, stream: str, data: bytes) -> None:
        """Format `data` from `stream` ("stdout"/"stderr") and append it, rotating between lines."""
        if not data:
            return
        entries = self.format(stream, data, rfc3339nano())
        if not self.max_size:
            self._write(b"".join(entries))
            return
        batch: list[bytes] = []
        pending = 0
        for entry in entries:
            if self.size + pending + len(entry) > self.max_size and self.size + pending:
                self._write(b"".join(batch))
                batch, pending = [], 0
                self.rotate()
            batch.append(entry)
            pending += len(entry)
        self._write(b"".join(batch))

    @abstractmethod
    def format(self, stream: str, data: bytes, ts: str) -> list[bytes]:
        """One entry per line (and one for a partial tail), each ending in a newline."""

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(data)

    def rotate(self) -> None:
        """PATH -> PATH.1 -> ... -> PATH.(max_file-1); with max_file 1 the file is emptied."""
        os.close(self.fd)
        self.fd = -1
        if self.max_file > 1:
            for i in range(self.max_file - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{i - 1}", f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
        else:
            os.truncate(self.path, 0)
        self.reopen()


def _lines(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (without their newline) and the partial tail."""
    parts = data.split(b"\n")
    return parts[:-1], parts[-1]


class CRIWriter(LogWriter):
    """`TIMESTAMP STREAM P|F MESSAGE`, the format the kubelet and `crictl logs` read."""

    def format(self, stream: str, data: bytes, ts: str) -> list[bytes]:
        head = f"{ts} {stream} ".encode()
        lines, tail = _lines(data)
        out = [head + b"F " + line + b"\n" for line in lines]
        if tail:
            out.append(head + b"P " + tail + b"\n")
        return out


class JSONFileWriter(LogWriter):
    """Docker's json-file: `{"log": TEXT, "stream": S, "time": T}` per line or partial piece."""

    def format(self, stream: str, data: bytes, ts: str) -> list[bytes]:
        suffix = f',"stream":"{stream}","time":"{ts}"}}\n'
        lines, tail = _lines(data)
        pieces = [line + b"\n" for line in lines]
        if tail:
            pieces.append(tail)
        return [
            (
                '{"log":' + _json.encode_basestring_ascii(piece.decode("utf-8", "replace")) + suffix
            ).encode()
            for piece in pieces
        ]


def open_writer(driver: str, path: str, max_size: int = 0, max_file: int = 1) -> LogWriter | None:
    if driver == "none":
        return None
    cls = JSONFileWriter if driver == "json-file" else CRIWriter
    return cls(path, max_size, max_file)

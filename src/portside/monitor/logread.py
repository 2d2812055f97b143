"""Reading the logs the monitor writes: both formats, across rotated files, partials joined.

This is the engine's side (`portside logs`); the monitor itself never imports
it. Entries come oldest first: PATH.(max_file-1) ... PATH.1, then PATH.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

from portside.errors import InvalidArgument


@dataclass(frozen=True)
class LogEntry:
    """One message: a whole line (with its newline), or the last piece of unfinished output."""

    time: str
    stream: str
    text: bytes


def log_files(path: str, max_file: int = 1) -> list[str]:
    """The files that exist, oldest first."""
    rotated = [f"{path}.{i}" for i in range(max(max_file, 1) - 1, 0, -1)]
    return [p for p in [*rotated, path] if os.path.exists(p)]


def parse_line(driver: str, line: bytes) -> tuple[str, str, bytes, bool] | None:
    """(time, stream, text, partial) of one stored line; None if it is not an entry."""
    if driver == "json-file":
        try:
            doc = json.loads(line)
        except ValueError:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("log"), str):
            return None
        text = doc["log"].encode()
        return (
            str(doc.get("time", "")),
            str(doc.get("stream", "stdout")),
            text,
            not text.endswith(b"\n"),
        )
    if driver == "k8s-file":
        parts = line.rstrip(b"\n").split(b" ", 3)
        if len(parts) < 3 or parts[2] not in (b"P", b"F"):
            return None
        text = parts[3] if len(parts) == 4 else b""
        partial = parts[2] == b"P"
        return parts[0].decode(), parts[1].decode(), text if partial else text + b"\n", partial
    raise InvalidArgument(f"log driver {driver!r}: cannot be read back")


def read_log(path: str, driver: str = "k8s-file", max_file: int = 1) -> Iterator[LogEntry]:
    """Every message in order; partial pieces of one stream are joined into their line."""
    pending: dict[str, tuple[str, bytes]] = {}
    for name in log_files(path, max_file):
        with open(name, "rb") as f:
            for raw in f:
                parsed = parse_line(driver, raw)
                if parsed is None:
                    continue
                time, stream, text, partial = parsed
                if stream in pending:
                    first_time, head = pending.pop(stream)
                    time, text = first_time, head + text
                if partial:
                    pending[stream] = (time, text)
                else:
                    yield LogEntry(time, stream, text)
    for stream, (time, text) in pending.items():
        yield LogEntry(time, stream, text)

"""`logs`: the monitor's log read back with docker's filters, and followed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from portside.engine.api import LogOptions
from portside.engine.containers import parse_time
from portside.monitor.logread import parse_line, read_log


def _keep(ts: str, options: LogOptions) -> bool:
    if options.since is None and options.until is None:
        return True
    t = parse_time(ts)
    if t is None:
        return True
    if options.since is not None and t < options.since:
        return False
    return not (options.until is not None and t > options.until)


def read_entries(
    path: str, driver: str, max_file: int, options: LogOptions
) -> list[tuple[str, str, bytes]]:
    entries = [
        (e.time, e.stream, e.text)
        for e in read_log(path, driver, max_file)
        if _keep(e.time, options)
    ]
    if options.tail is not None and options.tail >= 0:
        entries = entries[-options.tail :] if options.tail else []
    return entries


def follow_log(
    path: str, driver: str, options: LogOptions, running: Callable[[], bool]
) -> Iterator[tuple[str, str, bytes]]:
    """New entries written after the first read, until the container stops running.

    Starts at the file's current end; a rotation (new inode) restarts at the new
    file's beginning, so nothing written after the first read is lost or doubled.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - reopened on rotation
    except FileNotFoundError:
        f = None
    if f is not None:
        f.seek(0, os.SEEK_END)
    buf = b""
    pending: dict[str, bytes] = {}
    idle_checks = 0
    while True:
        chunk = f.read(65536) if f is not None else b""
        if chunk:
            idle_checks = 0
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                parsed = parse_line(driver, line + b"\n")
                if parsed is None:
                    continue
                ts, stream, text, partial = parsed
                if partial:
                    pending[stream] = pending.get(stream, b"") + text
                    continue
                text = pending.pop(stream, b"") + text
                if _keep(ts, options):
                    yield ts, stream, text
            continue
        # at the end: a rotation, or the container's end?
        try:
            st = os.stat(path)
            if f is None or st.st_ino != os.fstat(f.fileno()).st_ino:
                if f is not None:
                    rest = f.read()
                    if rest:
                        buf += rest
                        continue
                    f.close()
                f = open(path, "rb")  # noqa: SIM115
                continue
        except FileNotFoundError:
            pass
        if not running():
            idle_checks += 1
            if idle_checks > 2:
                break
        time.sleep(0.05)
    if f is not None:
        f.close()

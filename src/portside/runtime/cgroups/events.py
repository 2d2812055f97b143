"""Waiting for OOM events, for `portside-runtime events` and the monitor.

v1: an eventfd registered on memory.oom_control through cgroup.event_control;
the kernel signals it on every OOM in the cgroup, and once more when the
cgroup is removed. v2: memory.events is a kernfs file that wakes poll() with
POLLPRI when a counter changes. Either way we also wake every `interval`
seconds to notice a removed cgroup or a `stop` request, and re-read the
oom_kill counter, so a missed wake-up only delays an event.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
import time
from collections.abc import Iterator

from portside.errors import CgroupError
from portside.runtime.cgroups.manager import CgroupManager


def watch_oom(
    manager: CgroupManager,
    *,
    stop: threading.Event | None = None,
    interval: float = 1.0,
) -> Iterator[int]:
    """Yield the cgroup's OOM-kill count each time it goes up.

    Ends when the cgroup is removed or `stop` is set (checked at least every
    `interval` seconds). The first value yielded is a count above the one at
    the start, so OOM kills from before the call are not reported again.
    """
    baseline = _count_unless_gone(manager)  # now, not at the first next()
    if baseline is None:
        return iter(())  # removed before we looked: nothing more can happen
    if manager.kind == "v1":
        return _watch_v1(manager, stop, interval, baseline)
    return _watch_v2(manager, stop, interval, baseline)


def _memory_path(manager: CgroupManager) -> str | None:
    """The directory of the memory controller's cgroup, whether or not it still exists."""
    paths = getattr(manager, "paths", None)
    path = paths.get("memory") if isinstance(paths, dict) else getattr(manager, "path", None)
    return path if isinstance(path, str) else None


def _memory_gone(manager: CgroupManager) -> bool:
    """True once the cgroup holding the memory controller has been removed."""
    path = _memory_path(manager)
    return path is not None and not os.path.isdir(path)


def _count_unless_gone(manager: CgroupManager, settle_above: int | None = None) -> int | None:
    """The OOM-kill count (given a moment to pass `settle_above`, see _settle), or None when
    the read failed because the cgroup has been removed meanwhile."""
    try:
        if settle_above is not None:
            return _settle(manager, settle_above)
        return manager.oom_kill_count()
    except (OSError, CgroupError):
        if _memory_gone(manager):
            return None
        raise


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _settle(manager: CgroupManager, last: int) -> int:
    """The kill is counted just after the OOM notification; give it a moment."""
    count = manager.oom_kill_count()
    for _ in range(20):
        if count > last or not manager.exists():
            break
        time.sleep(0.005)
        count = manager.oom_kill_count()
    return count


def _watch_v1(
    manager: CgroupManager, stop: threading.Event | None, interval: float, last: int
) -> Iterator[int]:
    path = _memory_path(manager)
    if path is None:
        raise CgroupError("cannot watch OOM events: the container has no memory cgroup")
    if not os.path.isdir(path):
        # gone already (destroy may still be removing the others); looked at once,
        # so a removal racing this check is seen by the open or the registration below
        return
    efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    try:
        try:
            ofd = os.open(os.path.join(path, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if not os.path.isdir(path):
                return  # the cgroup went away while we set up: the watch is over
            raise CgroupError(f"cannot watch OOM events in {path}: {exc.strerror}") from exc
        try:
            with open(os.path.join(path, "cgroup.event_control"), "w") as ctl:
                ctl.write(f"{efd} {ofd}")
        except OSError as exc:
            os.close(ofd)
            if exc.errno == errno.ENODEV or not os.path.isdir(path):
                # removed between open and registration: ENODEV comes as soon as the
                # removal has begun, while the directory may still be listed a moment
                return
            raise CgroupError(f"cannot register for OOM events in {path}: {exc.strerror}") from exc
        try:
            poller = select.poll()
            poller.register(efd, select.POLLIN)
            while not _stopped(stop):
                ready = poller.poll(int(interval * 1000))
                if ready:
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(efd)
                count = _count_unless_gone(manager, last if ready else None)
                if count is None or not os.path.isdir(path):
                    return  # removed (a read may lose to the removal: it fails then)
                if count > last:
                    last = count
                    yield count
        finally:
            os.close(ofd)
    finally:
        os.close(efd)


def _watch_v2(
    manager: CgroupManager, stop: threading.Event | None, interval: float, last: int
) -> Iterator[int]:
    path = getattr(manager, "path", None)
    if not isinstance(path, str):
        raise CgroupError("cannot watch OOM events: the container has no cgroup")
    events = os.path.join(path, "memory.events")
    try:
        fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"cannot watch OOM events: {events}: {exc.strerror}") from exc
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        while not _stopped(stop):
            poller.poll(int(interval * 1000))
            count = _count_unless_gone(manager)
            if count is None or not os.path.isdir(path):
                return
            if count > last:
                last = count
                yield count
    finally:
        os.close(fd)

"""Reading and writing cgroup control files, with errors that name the file."""

from __future__ import annotations

import errno
import posix
import time

from portside.errors import CgroupError
from portside.linux import pathops

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any


def write(directory: str, name: str, value: str | int) -> None:
    """One write(2) of the whole value, as the kernel parses each write on its own."""
    write_each(directory, name, [value])


def write_each(directory: str, name: str, values: Iterable[str | int]) -> None:
    """One write(2) per value through one open of the file (device rules come a dozen at a
    time: an open and a close each was a tenth of a millisecond of every start)."""
    path = pathops.join(directory, name)
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_TRUNC | posix.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise CgroupError(
                f"cannot set {name}: {path} does not exist (controller not available?)"
            ) from exc
        raise CgroupError(f"failed to open {path}: {exc.strerror}") from exc
    try:
        for value in values:
            data = str(value).encode()
            try:
                posix.write(fd, data)
            except OSError as exc:
                raise CgroupError(
                    f"failed to write {data.decode()!r} to {path}: {exc.strerror}"
                ) from exc
    finally:
        posix.close(fd)


def write_retry_eintr(directory: str, name: str, value: str | int) -> None:
    for _ in range(5):
        try:
            write(directory, name, value)
            return
        except CgroupError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, OSError) and cause.errno in (errno.EINTR, errno.EAGAIN)):
                raise
            time.sleep(0.01)
    write(directory, name, value)


def read(directory: str, name: str) -> str:
    path = pathops.join(directory, name)
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise CgroupError(f"failed to read {path}: {exc.strerror}") from exc


def read_optional(directory: str, name: str) -> str | None:
    try:
        with open(pathops.join(directory, name)) as f:
            return f.read()
    except OSError:
        return None


def parse_uint(text: str) -> int:
    """A counter or limit; "max" (v2) and values past int64 (v1's "unlimited") read as 0."""
    text = text.strip()
    if text in ("max", ""):
        return 0
    value = int(text)
    return 0 if value < 0 or value >= (1 << 63) - 4096 * 2 else value


def read_uint(directory: str, name: str, default: int = 0) -> int:
    text = read_optional(directory, name)
    if text is None:
        return default
    try:
        return parse_uint(text)
    except ValueError:
        return default


def read_limit(directory: str, name: str) -> int:
    """A limit as runc reports it: v1's raw number, v2's "max" as 2**64-1; 0 if absent."""
    text = read_optional(directory, name)
    if text is None:
        return 0
    text = text.strip()
    if text == "max":
        return (1 << 64) - 1
    try:
        return int(text)
    except ValueError:
        return 0


def omitempty(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Drop zero/empty values of `keys`, as Go's `json:",omitempty"` does in runc's output."""
    for key in keys:
        if key in obj and not obj[key]:
            del obj[key]
    return obj


def parse_flat_keyed(text: str) -> dict[str, int]:
    """ "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def read_flat_keyed(directory: str, name: str) -> dict[str, int]:
    text = read_optional(directory, name)
    return parse_flat_keyed(text) if text is not None else {}


def read_pids(directory: str, name: str = "cgroup.procs") -> list[int]:
    text = read_optional(directory, name)
    if text is None:
        return []
    return [int(x) for x in text.split()]


def all_pids(directory: str) -> list[int]:
    """Pids in a cgroup and every cgroup below it."""
    out: list[int] = []
    for path in (directory, *pathops.subdirs_bottom_up(directory)):
        out.extend(read_pids(path))
    return out


def remove_tree(
    directory: str,
    *,
    attempts: int = 50,
    delay: float = 0.01,
    rmdir: Callable[[str], None] = posix.rmdir,
) -> None:
    """rmdir a cgroup and its children bottom-up, retrying while exiting tasks drain (EBUSY);
    a missing one (or not a directory) is left alone."""
    for attempt in range(attempts):
        try:
            if attempt == 0:
                try:
                    rmdir(directory)  # the usual case, without listing its files first
                    return
                except (FileNotFoundError, NotADirectoryError):
                    return
                except OSError as exc:
                    if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                        raise
            for sub in pathops.subdirs_bottom_up(directory):
                rmdir(sub)
            rmdir(directory)
            return
        except FileNotFoundError:
            if not pathops.exists(directory):
                return
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or attempt == attempts - 1:
                raise CgroupError(f"failed to remove cgroup {directory}: {exc.strerror}") from exc
        time.sleep(min(delay * (1.5**attempt), 0.2))

"""The five capability sets of the container process.

The bounding set is dropped first (that needs CAP_SETPCAP, still held), the user
switch keeps the permitted set (PR_SET_KEEPCAPS), then capset sets effective,
permitted and inheritable at once, and ambient capabilities are raised last,
as the kernel only allows ambient bits that are permitted and inheritable.
"""

from __future__ import annotations

import errno

from portside.linux import libc

LAST_CAP_PATH = "/proc/sys/kernel/cap_last_cap"


def last_cap() -> int:
    try:
        with open(LAST_CAP_PATH) as f:
            return int(f.read())
    except OSError:
        return 40


def drop_bounding(keep: int, last: int) -> None:
    for cap in range(last + 1):
        if not keep & (1 << cap):
            try:
                libc.prctl(libc.PR_CAPBSET_DROP, cap)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise


def apply(caps: dict[str, int], last: int) -> None:
    """Set effective, permitted and inheritable, then the ambient set."""
    mask = (1 << (last + 1)) - 1
    libc.capset(caps["effective"] & mask, caps["permitted"] & mask, caps["inheritable"] & mask)
    libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(last + 1):
        if caps["ambient"] & (1 << cap):
            try:
                libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, cap)
            except OSError as e:
                # runc ignores ambient bits the kernel refuses (not in permitted/inheritable)
                if e.errno != errno.EPERM:
                    raise

"""The kernel calls of the mount and namespace logic, behind one interface.

The runtime's rootfs, namespace and UTS steps make these calls through `kernel`,
which is `portside.linux.libc` (the module satisfies the protocol). A test swaps
in a RecordingSyscalls with `use()` and checks the calls the logic made, with
what arguments and in what order, without root and without touching the machine;
it can also make a call fail with an errno to check how the logic reports it.
"""

from __future__ import annotations

import posix

from portside.linux import libc, pathops

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Syscalls(Protocol):
        """What the mount and namespace logic asks of the kernel."""

        def mount(
            self,
            source: str | bytes | None,
            target: str | bytes,
            fstype: str | bytes | None,
            flags: int = 0,
            data: str | bytes | None = None,
            /,
        ) -> None: ...

        def umount2(self, target: str | bytes, flags: int = 0, /) -> None: ...

        def pivot_root(self, new_root: str | bytes, put_old: str | bytes, /) -> None: ...

        def unshare(self, flags: int, /) -> None: ...

        def setns(self, fd: int, nstype: int = 0, /) -> None: ...

        def sethostname(self, name: str, /) -> None: ...

        def setdomainname(self, name: str, /) -> None: ...


kernel: Syscalls = libc


def use(impl: Syscalls) -> Syscalls:
    """Make `impl` the kernel the logic calls; returns the one it replaces."""
    global kernel
    old, kernel = kernel, impl
    return old


class RecordingSyscalls:
    """A kernel that records each call as a tuple (name, *arguments) and does nothing.

    Paths are recorded as str. `fail` maps a call name, or (name, target path), to an
    errno that call raises as OSError (recorded all the same), as the real one would.
    """

    def __init__(self, fail: dict[Any, int] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = dict(fail or {})

    def _call(self, name: str, *args: Any, path: str | None = None) -> None:
        self.calls.append((name, *args))
        err = self.fail.get((name, path), self.fail.get(name))
        if err:
            raise (
                OSError(err, posix.strerror(err), path)
                if path
                else OSError(err, posix.strerror(err))
            )

    def mount(
        self,
        source: str | bytes | None,
        target: str | bytes,
        fstype: str | bytes | None,
        flags: int = 0,
        data: str | bytes | None = None,
        /,
    ) -> None:
        t = pathops.fsdecode(target)
        src = None if source is None else pathops.fsdecode(source)
        self._call("mount", src, t, fstype, flags, data, path=t)

    def umount2(self, target: str | bytes, flags: int = 0, /) -> None:
        t = pathops.fsdecode(target)
        self._call("umount2", t, flags, path=t)

    def pivot_root(self, new_root: str | bytes, put_old: str | bytes, /) -> None:
        new = pathops.fsdecode(new_root)
        self._call("pivot_root", new, pathops.fsdecode(put_old), path=new)

    def unshare(self, flags: int, /) -> None:
        self._call("unshare", flags)

    def setns(self, fd: int, nstype: int = 0, /) -> None:
        self._call("setns", fd, nstype)

    def sethostname(self, name: str, /) -> None:
        self._call("sethostname", name)

    def setdomainname(self, name: str, /) -> None:
        self._call("setdomainname", name)

    def names(self) -> list[str]:
        """The calls in order, by name only."""
        return [c[0] for c in self.calls]

"""Attach the device filter program to a cgroup v2 directory, replacing the old one.

The new program is attached (BPF_F_ALLOW_MULTI) before the old ones are
detached, so there is never a moment with no filter; a program attached to a
cgroup stays alive with the cgroup after our fd is closed.
"""

from __future__ import annotations

import contextlib
import os

from portside.errors import CgroupError
from portside.linux import bpf
from portside.runtime.cgroups import ebpf
from portside.runtime.cgroups.devices import Rule


def load(rules: list[Rule]) -> int:
    """Load the program for `rules` into the kernel; returns its fd (caller closes)."""
    code = ebpf.assemble(ebpf.program(rules))
    try:
        return bpf.prog_load(
            bpf.BPF_PROG_TYPE_CGROUP_DEVICE,
            code,
            expected_attach_type=bpf.BPF_CGROUP_DEVICE,
            name="portside_dev",
        )
    except OSError as exc:
        raise CgroupError(f"cannot load the device filter program: {exc.strerror}") from exc


def attached(path: str) -> list[int]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return bpf.prog_query(fd, bpf.BPF_CGROUP_DEVICE)
    finally:
        os.close(fd)


def install(path: str, rules: list[Rule]) -> None:
    prog = load(rules)
    try:
        try:
            dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise CgroupError(f"cannot open cgroup {path}: {exc.strerror}") from exc
        try:
            try:
                old = bpf.prog_query(dirfd, bpf.BPF_CGROUP_DEVICE)
            except OSError as exc:
                raise CgroupError(
                    f"cannot set device rules on {path}: not a cgroup v2 directory ({exc.strerror})"
                ) from exc
            try:
                bpf.prog_attach(dirfd, prog, bpf.BPF_CGROUP_DEVICE, bpf.BPF_F_ALLOW_MULTI)
            except OSError as exc:
                raise CgroupError(
                    f"cannot attach the device filter to {path}: {exc.strerror}"
                ) from exc
            for prog_id in old:
                with contextlib.suppress(OSError):
                    old_fd = bpf.prog_get_fd_by_id(prog_id)
                    try:
                        bpf.prog_detach(dirfd, old_fd, bpf.BPF_CGROUP_DEVICE)
                    finally:
                        os.close(old_fd)
        finally:
            os.close(dirfd)
    finally:
        os.close(prog)

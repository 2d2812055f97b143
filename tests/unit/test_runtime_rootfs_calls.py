"""Mount and namespace logic against the recording Syscalls fake (no root, no kernel calls)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.errors import RuntimeFailure
from portside.linux import libc, syscalls
from portside.linux.syscalls import RecordingSyscalls
from portside.runtime import namespaces, rootfs, specconv
from portside.testing.runtime_suite import base_spec


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingSyscalls]:
    rec = RecordingSyscalls()
    old = syscalls.use(rec)
    # a bind remount keeps the flags the kernel locks: none on a tmpfs we do not mount
    monkeypatch.setattr(rootfs, "_locked_flags", lambda path: 0)
    try:
        yield rec
    finally:
        syscalls.use(old)


def config(tmp_path: Path, mounts: list[dict[str, Any]]) -> specconv.Config:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec = base_spec("rootfs", ["/bin/true"])
    spec["mounts"] = mounts
    return specconv.convert(spec, str(tmp_path))


def test_bind_with_flags_is_a_bind_then_a_remount(fake: RecordingSyscalls, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    cfg = config(
        tmp_path,
        [
            {
                "destination": "/data",
                "type": "bind",
                "source": str(src),
                "options": ["rbind", "ro", "nosuid", "rslave"],
            }
        ],
    )
    rootfs.mount_all(cfg)
    dest = os.path.join(cfg.rootfs, "data")
    assert fake.calls == [
        ("mount", str(src), dest, None, libc.MS_BIND | libc.MS_REC, None),
        (
            "mount",
            None,
            dest,
            None,
            libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_BIND | libc.MS_REMOUNT,
            None,
        ),
        ("mount", None, dest, None, libc.MS_SLAVE | libc.MS_REC, None),
    ]
    assert os.path.isdir(dest)


def test_file_bind_creates_a_file_target(fake: RecordingSyscalls, tmp_path: Path) -> None:
    src = tmp_path / "resolv.conf"
    src.write_text("nameserver 127.0.0.1\n")
    cfg = config(
        tmp_path,
        [{"destination": "/etc/resolv.conf", "type": "bind", "source": str(src)}],
    )
    rootfs.mount_all(cfg)
    assert os.path.isfile(os.path.join(cfg.rootfs, "etc", "resolv.conf"))


def test_symlinked_destination_stays_inside(fake: RecordingSyscalls, tmp_path: Path) -> None:
    cfg = config(tmp_path, [{"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"}])
    outside = tmp_path / "outside"
    os.symlink(str(outside), os.path.join(cfg.rootfs, "evil"))
    rootfs.mount_all(cfg)
    (call,) = fake.calls
    assert call[2] == os.path.join(cfg.rootfs, str(outside).lstrip("/"), "x")
    assert not outside.exists()


def test_tmpfs_data_and_flags(fake: RecordingSyscalls, tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        [
            {
                "destination": "/run",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=755", "size=1m"],
            }
        ],
    )
    rootfs.mount_all(cfg)
    assert fake.calls == [
        (
            "mount",
            "tmpfs",
            os.path.join(cfg.rootfs, "run"),
            "tmpfs",
            libc.MS_NOSUID | libc.MS_NODEV,
            "mode=755,size=1m",
        )
    ]


def test_masked_and_readonly_paths(fake: RecordingSyscalls, tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    f = tmp_path / "file"
    f.write_text("x")
    rootfs.mask_path(str(d))
    rootfs.mask_path(str(f))
    rootfs.readonly_path(str(d))
    assert fake.calls == [
        ("mount", "tmpfs", str(d), "tmpfs", libc.MS_RDONLY, None),
        ("mount", "/dev/null", str(f), None, libc.MS_BIND, None),
        ("mount", str(d), str(d), None, libc.MS_BIND | libc.MS_REC, None),
        (
            "mount",
            None,
            str(d),
            None,
            libc.MS_RDONLY | libc.MS_REC | libc.MS_BIND | libc.MS_REMOUNT,
            None,
        ),
    ]


def test_mount_failure_names_source_and_destination(
    fake: RecordingSyscalls, tmp_path: Path
) -> None:
    fake.fail["mount"] = errno.EPERM
    cfg = config(tmp_path, [{"destination": "/m", "type": "mqueue", "source": "mqueue"}])
    with pytest.raises(Exception, match='error mounting "mqueue" to rootfs at "/m"'):
        rootfs.mount_all(cfg)


def test_pivot_stacks_the_old_root_then_detaches_it(
    fake: RecordingSyscalls, tmp_path: Path
) -> None:
    cwd = os.getcwd()
    try:
        rootfs.pivot(str(tmp_path))
    finally:
        os.chdir(cwd)
    assert fake.calls == [
        ("pivot_root", ".", "."),
        ("mount", None, ".", None, libc.MS_SLAVE | libc.MS_REC, None),
        ("umount2", ".", libc.MNT_DETACH),
    ]


def test_unshare_is_one_call_with_every_flag(fake: RecordingSyscalls) -> None:
    namespaces.unshare(["network", "ipc", "uts", "mount"])
    namespaces.unshare([])  # nothing new: no call at all
    flags = libc.CLONE_NEWNET | libc.CLONE_NEWIPC | libc.CLONE_NEWUTS | libc.CLONE_NEWNS
    assert fake.calls == [("unshare", flags)]


def test_unshare_failure_is_one_line_naming_the_kinds(fake: RecordingSyscalls) -> None:
    fake.fail["unshare"] = errno.EPERM
    with pytest.raises(RuntimeFailure, match=r"^unshare user,pid: operation not permitted$"):
        namespaces.unshare(["user", "pid"])


def test_join_by_path_is_setns_with_the_kind(fake: RecordingSyscalls, tmp_path: Path) -> None:
    pin = tmp_path / "netns"
    pin.write_text("")
    namespaces.join("network", str(pin))
    ((name, fd, nstype),) = fake.calls
    assert (name, nstype) == ("setns", libc.CLONE_NEWNET)
    with pytest.raises(OSError):
        os.fstat(fd)  # the path's fd is closed again
    fake.fail["setns"] = errno.EINVAL
    with pytest.raises(RuntimeFailure, match=f"failed to join network namespace {pin}: invalid"):
        namespaces.join("network", str(pin))
    with pytest.raises(RuntimeFailure, match="failed to open /nonexistent"):
        namespaces.join("ipc", "/nonexistent")
    assert fake.names() == ["setns", "setns"]


def test_failure_of_one_target_only(fake: RecordingSyscalls, tmp_path: Path) -> None:
    """`fail` keyed (name, path) fails that call alone, as a missing mount point would."""
    cfg = config(
        tmp_path,
        [
            {"destination": "/a", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/b", "type": "tmpfs", "source": "tmpfs"},
        ],
    )
    fake.fail[("mount", os.path.join(cfg.rootfs, "b"))] = errno.ENODEV
    with pytest.raises(RuntimeFailure, match='"tmpfs" to rootfs at "/b": no such device'):
        rootfs.mount_all(cfg)
    assert [c[2] for c in fake.calls] == [
        os.path.join(cfg.rootfs, "a"),
        os.path.join(cfg.rootfs, "b"),
    ]

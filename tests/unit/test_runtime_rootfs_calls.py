"""rootfs mount logic against a recording fake of linux.libc (no root, no kernel mounts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from portside.linux import libc
from portside.runtime import rootfs, specconv
from portside.testing.runtime_suite import base_spec


class Recorder:
    """Stands in for portside.linux.libc: records mount calls, keeps the constants."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(libc, name)  # the MS_* constants

    def mount(
        self, source: Any, target: Any, fstype: Any, flags: int = 0, data: Any = None
    ) -> None:
        self.calls.append(("mount", source, os.fsdecode(target), fstype, flags, data))

    def umount2(self, target: Any, flags: int = 0) -> None:
        self.calls.append(("umount2", os.fsdecode(target), flags))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(rootfs, "libc", rec)
    # a bind remount keeps the flags the kernel locks: none on a tmpfs we do not mount
    monkeypatch.setattr(rootfs, "_locked_flags", lambda path: 0)
    return rec


def config(tmp_path: Path, mounts: list[dict[str, Any]]) -> specconv.Config:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec = base_spec("rootfs", ["/bin/true"])
    spec["mounts"] = mounts
    return specconv.convert(spec, str(tmp_path))


def test_bind_with_flags_is_a_bind_then_a_remount(fake: Recorder, tmp_path: Path) -> None:
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


def test_file_bind_creates_a_file_target(fake: Recorder, tmp_path: Path) -> None:
    src = tmp_path / "resolv.conf"
    src.write_text("nameserver 127.0.0.1\n")
    cfg = config(
        tmp_path,
        [{"destination": "/etc/resolv.conf", "type": "bind", "source": str(src)}],
    )
    rootfs.mount_all(cfg)
    assert os.path.isfile(os.path.join(cfg.rootfs, "etc", "resolv.conf"))


def test_symlinked_destination_stays_inside(fake: Recorder, tmp_path: Path) -> None:
    cfg = config(tmp_path, [{"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"}])
    outside = tmp_path / "outside"
    os.symlink(str(outside), os.path.join(cfg.rootfs, "evil"))
    rootfs.mount_all(cfg)
    (call,) = fake.calls
    assert call[2] == os.path.join(cfg.rootfs, str(outside).lstrip("/"), "x")
    assert not outside.exists()


def test_tmpfs_data_and_flags(fake: Recorder, tmp_path: Path) -> None:
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


def test_masked_and_readonly_paths(fake: Recorder, tmp_path: Path) -> None:
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
    fake: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(fake, "mount", refuse)
    cfg = config(tmp_path, [{"destination": "/m", "type": "mqueue", "source": "mqueue"}])
    with pytest.raises(Exception, match='error mounting "mqueue" to rootfs at "/m"'):
        rootfs.mount_all(cfg)

"""specconv: a bad config is refused with one line before anything is made; a good one converts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portside.errors import InvalidDocument
from portside.linux import libc
from portside.runtime import specconv
from portside.testing.runtime_suite import base_spec


@pytest.fixture
def spec(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "rootfs").mkdir()
    return base_spec("rootfs", ["/bin/true"])


def convert(spec: dict[str, Any], tmp_path: Path) -> specconv.Config:
    return specconv.convert(spec, str(tmp_path))


def test_default_spec_converts(spec: dict[str, Any], tmp_path: Path) -> None:
    cfg = convert(spec, tmp_path)
    assert cfg.rootfs == str((tmp_path / "rootfs").resolve())
    assert [n for n, _ in cfg.namespaces] == ["ipc", "uts", "network", "pid", "mount"]
    assert cfg.process.caps is not None
    assert cfg.process.caps["bounding"] == (1 << 5) | (1 << 10) | (1 << 29)
    assert cfg.process.rlimits == [(7, 1024, 1024)]
    sysfs = next(m for m in cfg.mounts if m.destination == "/sys")
    assert sysfs.flags == libc.MS_NOSUID | libc.MS_NOEXEC | libc.MS_NODEV | libc.MS_RDONLY


def test_mount_options_split_into_flags_propagation_and_data() -> None:
    flags, prop, data = specconv.parse_mount_options(
        ["rbind", "ro", "nosuid", "rslave", "mode=755", "size=1m", "rw", "tmpcopyup"]
    )
    assert flags == libc.MS_BIND | libc.MS_REC | libc.MS_NOSUID
    assert prop == [libc.MS_SLAVE | libc.MS_REC]
    assert data == "mode=755,size=1m"


BAD: dict[str, tuple[Any, str]] = {
    "no-root": (lambda s: s.pop("root"), "root must be specified"),
    "root-missing": (lambda s: s["root"].update(path="nope"), "invalid rootfs: stat"),
    "unknown-ns": (
        lambda s: s["linux"]["namespaces"].append({"type": "foo"}),
        'namespace {"foo" ""} does not exist',
    ),
    "dup-ns": (
        lambda s: s["linux"]["namespaces"].append({"type": "pid"}),
        "duplicated ns 'pid'",
    ),
    "no-args": (lambda s: s["process"].update(args=[]), "args must not be empty"),
    "relative-cwd": (lambda s: s["process"].update(cwd="tmp"), "cwd property must be"),
    "bad-rlimit": (
        lambda s: s["process"]["rlimits"].append({"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}),
        "rlimit 'RLIMIT_NOPE' is not known",
    ),
    "userns-without-maps": (
        lambda s: s["linux"]["namespaces"].append({"type": "user"}),
        "no uid or gid mappings",
    ),
    "host-sysctl": (
        lambda s: s["linux"].update(sysctl={"kernel.panic": "1"}),
        "not in a separate kernel namespace",
    ),
    "hostname-without-uts": (
        lambda s: s["linux"].update(namespaces=[{"type": "mount"}]),
        "without a private UTS namespace",
    ),
    "relative-mount-dest": (
        lambda s: s["mounts"].append({"destination": "x", "type": "tmpfs"}),
        "mount destination x is not absolute",
    ),
    "relative-hook": (
        lambda s: s.update(hooks={"prestart": [{"path": "bin/true"}]}),
        "is not absolute",
    ),
    "apparmor-missing": (
        lambda s: s["process"].update(apparmorProfile="docker-default"),
        "AppArmor is not enabled",
    ),
    "time-offsets-without-timens": (
        lambda s: s["linux"].update(timeOffsets={"monotonic": {"secs": 1}}),
        "no new time namespace",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_configs_name_the_field(spec: dict[str, Any], tmp_path: Path, case: str) -> None:
    mutate, message = BAD[case]
    mutate(spec)
    if case == "apparmor-missing" and Path("/sys/kernel/security/apparmor").is_dir():
        pytest.skip("this kernel has AppArmor, so the profile is not refused")
    with pytest.raises(InvalidDocument) as info:
        convert(spec, tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_spec_invalid_json_and_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidDocument, match="no such file"):
        specconv.load_spec(str(tmp_path))
    (tmp_path / "config.json").write_text("{bad")
    with pytest.raises(InvalidDocument, match="invalid JSON"):
        specconv.load_spec(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps([1]))
    with pytest.raises(InvalidDocument, match="JSON object"):
        specconv.load_spec(str(tmp_path))


def test_unknown_capability_is_a_warning_as_in_runc(spec: dict[str, Any], tmp_path: Path) -> None:
    spec["process"]["capabilities"]["bounding"].append("CAP_NOPE")
    cfg = convert(spec, tmp_path)
    assert cfg.warnings == ["ignoring unknown or unavailable capabilities: [CAP_NOPE]"]
    assert cfg.process.caps is not None
    assert cfg.process.caps["bounding"] == (1 << 5) | (1 << 10) | (1 << 29)

"""specgen: parsing of user-facing values and the config.json it produces (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.engine import specgen
from portside.engine.api import CreateOptions
from portside.errors import InvalidArgument, NotFound


def _rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "rootfs" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n"
    )
    (etc / "group").write_text("root:x:0:\nweb:x:1000:\nextra:x:2000:web\nstaff:x:50:\n")
    return tmp_path / "rootfs"


def test_users_and_groups_are_resolved_in_the_rootfs(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    assert specgen.resolve_user(None, root) == (0, 0, [], "/root")
    assert specgen.resolve_user("web", root) == (1000, 1000, [2000], "/home/web")
    assert specgen.resolve_user("web:staff", root)[:2] == (1000, 50)
    assert specgen.resolve_user("1234:77", root)[:2] == (1234, 77)
    with pytest.raises(NotFound, match="nobody"):
        specgen.resolve_user("nobody", root)
    with pytest.raises(NotFound, match="nogroup"):
        specgen.resolve_user("web:nogroup", root)


def test_a_passwd_symlink_out_of_the_rootfs_is_not_followed(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    (root / "etc" / "passwd").unlink()
    outside = tmp_path / "host-passwd"
    outside.write_text("evil:x:4242:4242::/:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to(outside)
    with pytest.raises(NotFound):
        specgen.resolve_user("evil", root)


@pytest.mark.parametrize(
    ("text", "value"), [("512", 512), ("64k", 65536), ("20m", 20 << 20), ("1g", 1 << 30)]
)
def test_sizes(text: str, value: int) -> None:
    assert specgen.parse_bytes(text) == value


@pytest.mark.parametrize(("text", "value"), [("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5)])
def test_durations(text: str, value: float) -> None:
    assert specgen.parse_duration(text) == pytest.approx(value)


@given(st.integers(min_value=0, max_value=10**6))
def test_bare_durations_are_seconds(n: int) -> None:
    assert specgen.parse_duration(str(n)) == n


def test_bad_values_give_one_line() -> None:
    for bad in ("12x", "-1m", "m"):
        with pytest.raises(InvalidArgument):
            specgen.parse_bytes(bad)
    with pytest.raises(InvalidArgument, match="SIGFOO"):
        specgen.parse_signal("SIGFOO")
    assert specgen.parse_signal("SIGTERM") == specgen.parse_signal("term") == 15


def test_command_combines_entrypoint_and_cmd_as_docker() -> None:
    img = {"Entrypoint": ["/entry"], "Cmd": ["default"]}
    assert specgen.command_of(img, CreateOptions("i")) == ["/entry", "default"]
    assert specgen.command_of(img, CreateOptions("i", command=["x"])) == ["/entry", "x"]
    assert specgen.command_of(img, CreateOptions("i", entrypoint=["sh"])) == ["sh"]
    with pytest.raises(InvalidArgument, match="no command"):
        specgen.command_of({}, CreateOptions("i"))


def test_env_later_wins_and_bare_names_take_the_callers_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FROM_CALLER", "c")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    merged = specgen.merge_env(["A=1", "B=2"], ["A=3", "FROM_CALLER", "UNSET_ONE"])
    assert merged == ["A=3", "B=2", "FROM_CALLER=c"]


def test_healthcheck_from_the_command_line_or_the_image() -> None:
    image = {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 2}}
    hc = specgen.healthcheck_of(image, CreateOptions("i"))
    assert hc is not None and (hc["test"], hc["interval"], hc["retries"]) == (["CMD", "true"], 5, 2)
    hc = specgen.healthcheck_of(image, CreateOptions("i", health_cmd="exit 1"))
    assert hc is not None and hc["test"] == ["CMD-SHELL", "exit 1"]
    assert specgen.healthcheck_of(image, CreateOptions("i", no_healthcheck=True)) is None


def test_generated_spec_has_podmans_defaults(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    opts = CreateOptions("i", command=["sh"], memory=20 << 20, pids_limit=10, cap_drop=["KILL"])
    spec = specgen.generate(
        {"Env": ["PATH=/bin", "A=1"], "WorkingDir": "/w"},
        opts,
        cid="c" * 64,
        rootfs=root,
        userdata=tmp_path / "ud",
        extra_mounts=[],
    )
    caps = spec["process"]["capabilities"]["effective"]
    assert "CAP_KILL" not in caps and "CAP_NET_RAW" in caps and "CAP_SYS_ADMIN" not in caps
    assert spec["process"]["cwd"] == "/w"
    assert "A=1" in spec["process"]["env"] and "PATH=/bin" in spec["process"]["env"]
    assert spec["linux"]["maskedPaths"] == list(specgen.MASKED_PATHS)
    assert spec["linux"]["resources"]["memory"] == {"limit": 20 << 20, "swap": 40 << 20}
    assert spec["linux"]["resources"]["pids"] == {"limit": 10}
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert {"type": "network"} in spec["linux"]["namespaces"]
    dests = [m["destination"] for m in spec["mounts"]]
    assert {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/proc", "/dev/pts"} <= set(dests)
    host = specgen.generate(
        {},
        CreateOptions("i", command=["sh"], network="host"),
        cid="d" * 64,
        rootfs=root,
        userdata=tmp_path / "ud",
        extra_mounts=[],
    )
    assert {"type": "network"} not in host["linux"]["namespaces"]

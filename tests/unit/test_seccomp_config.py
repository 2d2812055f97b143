"""Validation and conversion of linux.seccomp, without installing anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portside.errors import InvalidSeccompConfig
from portside.linux import seccomp as lib
from portside.runtime import seccomp as sc
from tests.conftest import SPECS

pytestmark = pytest.mark.skipif(not lib.available(), reason="libseccomp.so.2 is not installed")


def cfg(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **extra}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "defaultAction is required"),
        ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown action 'SCMP_ACT_NOPE'"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "cannot be the default action"),
        (cfg(architectures=["SCMP_ARCH_Z80"]), "unknown architecture 'SCMP_ARCH_Z80'"),
        (cfg(flags=["SECCOMP_FILTER_FLAG_FOO"]), "unknown flag 'SECCOMP_FILTER_FLAG_FOO'"),
        (cfg({"names": [], "action": "SCMP_ACT_ERRNO"}), r"syscalls\[0\]\.names"),
        (cfg({"names": ["read"], "action": "SCMP_ACT_BOOM"}), r"syscalls\[0\]: unknown action"),
        (
            cfg({"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}),
            "errnoRet is only valid",
        ),
        (
            cfg({"names": ["read"], "action": "SCMP_ACT_KILL", "args": [{"index": 6, "value": 1}]}),
            r"args\[0\]\.index 6 is out of range",
        ),
        (
            cfg(
                {
                    "names": ["read"],
                    "action": "SCMP_ACT_KILL",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}],
                }
            ),
            "unknown operator 'SCMP_CMP_ABOUT'",
        ),
        (
            cfg(
                {
                    "names": ["read"],
                    "action": "SCMP_ACT_KILL",
                    "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}],
                }
            ),
            "unsigned 64-bit",
        ),
        (cfg({"names": ["read"], "action": "SCMP_ACT_NOTIFY"}), "listenerPath is not set"),
        (
            cfg({"names": ["write"], "action": "SCMP_ACT_NOTIFY"}, listenerPath="/x"),
            "cannot be used for the write syscall",
        ),
        (
            cfg(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]),
            "needs an SCMP_ACT_NOTIFY rule",
        ),
    ],
)
def test_bad_configs_give_one_line_naming_the_fault(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSeccompConfig, match=message) as info:
        sc.validate_seccomp(config)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("linux.seccomp: ")


def test_a_good_config_validates() -> None:
    sc.validate_seccomp(
        cfg(
            {"names": ["read", "write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
            architectures=["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
        )
    )


def test_rule_equal_to_the_default_is_dropped() -> None:
    base = sc.compile_seccomp(cfg())
    same = sc.compile_seccomp(cfg({"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}))
    assert same.program == base.program
    other = sc.compile_seccomp(cfg({"names": ["getpid"], "action": "SCMP_ACT_LOG"}))
    assert other.program != base.program


def test_notify_sets_the_listener_flag() -> None:
    compiled = sc.compile_seccomp(
        cfg(
            {"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"},
            listenerPath="/run/agent.sock",
            flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        )
    )
    assert compiled.notify
    want = (
        lib.SECCOMP_FILTER_FLAG_NEW_LISTENER
        | lib.SECCOMP_FILTER_FLAG_TSYNC
        | lib.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        | lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    )
    assert compiled.flags == want


def test_profile_to_oci_follows_caps_and_arch() -> None:
    profile = json.loads((SPECS / "seccomp" / "default.json").read_text())
    plain = sc.profile_to_oci(profile, ["CAP_CHOWN"], machine="x86_64")
    ptrace = sc.profile_to_oci(profile, ["CAP_SYS_PTRACE"], machine="x86_64")
    arm = sc.profile_to_oci(profile, [], machine="aarch64")

    def action_of(conf: dict[str, Any], name: str) -> set[str]:
        return {r["action"] for r in conf["syscalls"] if name in r["names"]}

    assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert plain["defaultAction"] == "SCMP_ACT_ERRNO" and plain["defaultErrnoRet"] == 38
    assert action_of(plain, "kcmp") == {"SCMP_ACT_ERRNO"}
    assert action_of(ptrace, "kcmp") == {"SCMP_ACT_ALLOW"}
    assert action_of(plain, "arch_prctl") == {"SCMP_ACT_ALLOW"}  # amd64-only rule
    assert action_of(arm, "arch_prctl") == set()
    assert all("includes" not in r and "comment" not in r for r in plain["syscalls"])
    sc.validate_seccomp(plain)
    sc.validate_seccomp(ptrace)


def test_listener_message_shape() -> None:
    state = {"ociVersion": "1.2.0", "id": "c", "status": "creating", "pid": 42, "bundle": "/b"}
    msg = json.loads(sc.listener_message(state, metadata="m"))
    assert msg == {
        "ociVersion": "1.2.0",
        "fds": ["seccompFd"],
        "pid": 42,
        "metadata": "m",
        "state": state,
    }


def test_compiled_programs_are_cached_on_disk(tmp_path: Path) -> None:
    tmp_path = tmp_path / "cache"
    profile = sc.profile_to_oci(sc.default_profile(), ["CAP_CHOWN"])
    first = sc.cached_compile(profile, str(tmp_path))
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".bpf"
    again = sc.cached_compile(profile, str(tmp_path))
    assert again.program == first.program and again.flags == first.flags
    assert again.program == sc.compile_seccomp(profile).program
    files[0].write_bytes(b"garbage")  # damaged: compiled again and rewritten
    assert sc.cached_compile(profile, str(tmp_path)).program == first.program
    assert files[0].read_bytes().endswith(first.program)
    other = dict(profile, defaultErrnoRet=1)
    sc.cached_compile(other, str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 2


def test_features_report_what_the_kernel_supports() -> None:
    feats = sc.features()
    assert feats["enabled"] is True
    assert set(feats["actions"]) <= set(sc.ACTIONS)
    assert "SCMP_ACT_ALLOW" in feats["actions"] and "SCMP_ACT_ERRNO" in feats["actions"]
    assert "SCMP_ARCH_X86_64" in feats["archs"] or "SCMP_ARCH_AARCH64" in feats["archs"]
    assert feats["knownFlags"] == list(sc.FLAGS)
    # TSYNC is older than any kernel this runs on (3.17)
    assert "SECCOMP_FILTER_FLAG_TSYNC" in feats["supportedFlags"]
    assert lib.flag_supported(1 << 30) is False  # a flag no kernel has


def test_default_linux_seccomp_is_the_converted_vendored_profile() -> None:
    caps = ["CAP_CHOWN", "CAP_SYS_PTRACE"]
    got = sc.default_linux_seccomp(caps, machine="x86_64")
    assert got == sc.profile_to_oci(sc.default_profile(), caps, machine="x86_64")
    sc.validate_seccomp(got)

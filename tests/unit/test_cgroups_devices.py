"""Device rules: v1 lines, runc's effective list, and the v2 eBPF program's verdicts."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.errors import CgroupError
from portside.runtime.cgroups import devices as dev
from portside.runtime.cgroups import ebpf


def test_v1_lines() -> None:
    rules = dev.parse_rules(
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "wr"},
            {"allow": True, "type": "b", "major": 8, "access": "m"},
            {"allow": False, "type": "c", "minor": 5},
        ]
    )
    assert dev.v1_writes(rules) == [
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 1:3 rw"),
        ("devices.allow", "b 8:* m"),
        ("devices.deny", "c *:5 rwm"),
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"type": "c"}, "boolean 'allow'"),
        ({"allow": True, "type": "x"}, "unknown device type 'x'"),
        ({"allow": True, "access": "rwx"}, "invalid access 'rwx'"),
        ({"allow": True, "major": "1"}, "invalid major '1'"),
    ],
)
def test_bad_rules_are_one_line(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(CgroupError, match=message):
        dev.parse_rules([rule])


def test_container_rules_order_is_runcs() -> None:
    rules = dev.container_rules(
        [{"allow": False, "access": "rwm"}],
        [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
    )
    assert rules[0] == dev.Rule(False, "a")
    assert rules[1] == dev.Rule(True, "c", 10, 229, "rwm")
    assert rules[2:] == list(dev.DEFAULT_ALLOWED)


def test_default_container_program_verdicts() -> None:
    prog = ebpf.program(dev.container_rules([{"allow": False, "access": "rwm"}]))
    ev = ebpf.evaluate
    assert ev(prog, "c", 1, 3, "rw")  # /dev/null
    assert ev(prog, "c", 136, 7, "rw")  # a pty
    assert ev(prog, "c", 1, 11, "m")  # mknod of anything is allowed...
    assert not ev(prog, "c", 1, 11, "r")  # ...but not opening it (/dev/kmsg)
    assert not ev(prog, "b", 254, 0, "r")  # the host disk
    assert not ev(prog, "c", 1, 1, "rw")  # /dev/mem


def test_no_rules_allows_everything_and_a_deny_all_denies() -> None:
    assert ebpf.evaluate(ebpf.program([]), "b", 8, 0, "rwm")
    assert not ebpf.evaluate(ebpf.program([dev.Rule(False)]), "c", 1, 3, "r")


def test_encoding_is_struct_bpf_insn() -> None:
    code = ebpf.assemble(ebpf.program([]))
    assert len(code) % 8 == 0
    # first: r2 = *(u32 *)(r1 + 0)  -> code 0x61, regs dst=2 src=1
    assert struct.unpack_from("<BBhi", code, 0) == (0x61, 0x12, 0, 0)
    # last two: r0 = 1; exit
    assert struct.unpack_from("<BBhi", code, len(code) - 16) == (0xB7, 0x00, 0, 1)
    assert struct.unpack_from("<BBhi", code, len(code) - 8) == (0x95, 0x00, 0, 0)


_rule = st.builds(
    dev.Rule,
    allow=st.booleans(),
    type=st.sampled_from(["a", "c", "b"]),
    major=st.sampled_from([-1, 1, 5, 8]),
    minor=st.sampled_from([-1, 0, 3, 5]),
    access=st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"]),
)


def _reference(rules: list[dev.Rule], dtype: str, major: int, minor: int, access: str) -> bool:
    """Plain semantics: the last "a" rule sets the default, then the last matching rule wins."""
    default, rest = True, rules
    for i, r in enumerate(rules):
        if r.type == "a":
            default, rest = r.allow, rules[i + 1 :]
    for r in reversed(rest):
        if r.type != dtype:
            continue
        if not set(access) <= set(r.access):
            continue
        if r.major not in (-1, major) or r.minor not in (-1, minor):
            continue
        return r.allow
    return default


@settings(max_examples=120, deadline=None)
@given(
    rules=st.lists(_rule, max_size=8),
    dtype=st.sampled_from(["c", "b"]),
    major=st.sampled_from([1, 5, 8, 9]),
    minor=st.sampled_from([0, 3, 5, 7]),
    access=st.sampled_from(["r", "w", "m", "rw", "rwm"]),
)
def test_program_matches_the_reference_semantics(
    rules: list[dev.Rule], dtype: str, major: int, minor: int, access: str
) -> None:
    prog = ebpf.program(rules)
    assert ebpf.evaluate(prog, dtype, major, minor, access) == _reference(
        rules, dtype, major, minor, access
    )


def _state(text: str) -> dev.V1State:
    return dev.V1State.parse_list(text)


CONTAINER = dev.container_rules([{"allow": False, "access": "rwm"}])


def test_devices_list_parses_to_a_default_and_exceptions() -> None:
    assert _state("a *:* rwm\n").allow and not _state("a *:* rwm\n").exceptions
    s = _state("c 1:3 rwm\nb *:* m\nc 136:* rw\n")
    assert not s.allow
    assert s.exceptions == {("c", 1, 3): "rwm", ("b", -1, -1): "m", ("c", 136, -1): "rw"}
    assert not _state("").allow and not _state("").exceptions  # deny everything
    with pytest.raises(CgroupError, match=r"cannot parse devices\.list line"):
        _state("c 1 rwm\n")


def test_fresh_cgroup_gets_one_reset_then_each_allowed_device() -> None:
    writes = dev.v1_transition(_state("a *:* rwm"), CONTAINER)
    assert writes[0] == ("devices.deny", "a *:* rwm")
    assert writes[1:] == [("devices.allow", r.v1_line()) for r in dev.DEFAULT_ALLOWED]


def test_same_list_again_writes_nothing() -> None:
    current = _state("".join(f"{r.v1_line()}\n" for r in dev.DEFAULT_ALLOWED))
    assert dev.v1_transition(current, CONTAINER) == []


def _rule_of(line: str, allow: bool = True) -> dev.Rule:
    dtype, majmin, access = line.split()
    major, minor = (-1 if x == "*" else int(x) for x in majmin.split(":"))
    return dev.Rule(allow, dtype, major, minor, access)


def test_update_writes_only_what_changes() -> None:
    """A device gained, one lost, one narrowed: three writes, no reset, nothing kept is
    ever taken away (runc's emulator transition)."""
    current = _state("c 1:3 rwm\nc 1:5 rwm\nc 10:229 rwm\nc 136:* rwm\n")
    rules = dev.parse_rules(
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
            {"allow": True, "type": "c", "major": 136, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
        ]
    )
    assert dev.v1_transition(current, rules) == [
        ("devices.deny", "c 1:5 wm"),
        ("devices.deny", "c 10:229 rwm"),
        ("devices.allow", "c 1:9 rwm"),
    ]


def test_an_allow_everything_target_is_written_in_full() -> None:
    """The kernel lists an allow default as "a *:* rwm" and hides its denials: no diff."""
    rules = dev.parse_rules(
        [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 3}]
    )
    assert dev.v1_transition(_state("c 1:3 rwm\n"), rules) == dev.v1_writes(rules)


_key = st.tuples(
    st.sampled_from(["c", "b"]), st.sampled_from([-1, 1, 5]), st.sampled_from([-1, 3, 9])
)
_access = st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"])


@settings(max_examples=150, deadline=None)
@given(
    allowed=st.dictionaries(_key, _access, max_size=5),
    default_allow=st.booleans(),
    rules=st.lists(_rule, max_size=8),
)
def test_transition_reaches_what_the_full_rewrite_would(
    allowed: dict[tuple[str, int, int], str], default_allow: bool, rules: list[dev.Rule]
) -> None:
    """From any listed state, applying the transition's writes one by one (the kernel's
    semantics, V1State.apply) ends where writing every rule would."""
    current = dev.V1State(True) if default_allow else dev.V1State(False, allowed)
    expected = current.copy()
    for r in rules:
        expected.apply(r)
    got = current.copy()
    for name, line in dev.v1_transition(current, rules):
        allow = name == "devices.allow"
        got.apply(dev.Rule(allow, "a") if line.startswith("a ") else _rule_of(line, allow))
    assert (got.allow, got.exceptions) == (expected.allow, expected.exceptions)

"""Device access rules: the OCI form, the v1 devices.allow/deny lines, and runc's defaults.

A rule is the spec's object: {"allow": bool, "type": "a"|"c"|"b", "major": int,
"minor": int, "access": "rwm"}; a missing type is "a", a missing major/minor
is a wildcard, a missing access is "rwm".
"""

from __future__ import annotations

from portside.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any


class Rule:
    """One device rule (immutable; a plain class because dataclasses cost start-up time)."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(
        self, allow: bool, type: str = "a", major: int = -1, minor: int = -1, access: str = "rwm"
    ) -> None:
        self.allow = allow
        self.type = type  # a, c or b
        self.major = major  # -1: any
        self.minor = minor
        self.access = access

    def _key(self) -> tuple[bool, str, int, int, str]:
        return (self.allow, self.type, self.major, self.minor, self.access)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Rule(allow={!r}, type={!r}, major={!r}, minor={!r}, access={!r})".format(
            *self._key()
        )

    @classmethod
    def parse(cls, obj: Mapping[str, Any], where: str = "devices") -> Rule:
        if "allow" not in obj or not isinstance(obj["allow"], bool):
            raise CgroupError(f"linux.resources.{where}: each rule needs a boolean 'allow'")
        dtype = obj.get("type") or "a"
        if dtype not in ("a", "c", "b", "u", "p"):
            raise CgroupError(f"linux.resources.{where}: unknown device type {dtype!r}")
        if dtype in ("u", "p"):
            dtype = "c"  # unbuffered char and FIFO are char devices to the cgroup
        access = obj.get("access") or "rwm"
        if not access or any(c not in "rwm" for c in access):
            raise CgroupError(f"linux.resources.{where}: invalid access {access!r} (use r, w, m)")
        major = obj.get("major")
        minor = obj.get("minor")
        for name, value in (("major", major), ("minor", minor)):
            if value is not None and (not isinstance(value, int) or value < -1):
                raise CgroupError(f"linux.resources.{where}: invalid {name} {value!r}")
        return cls(
            allow=obj["allow"],
            type=dtype,
            major=-1 if major is None else major,
            minor=-1 if minor is None else minor,
            access="".join(c for c in "rwm" if c in access),
        )

    def v1_line(self) -> str:
        """devices.allow / devices.deny syntax: "c 1:3 rwm", "a" for everything."""
        if self.type == "a":
            return "a *:* rwm"
        major = "*" if self.major < 0 else str(self.major)
        minor = "*" if self.minor < 0 else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    @property
    def is_wildcard_all(self) -> bool:
        return self.type == "a"


def parse_rules(rules: Iterable[Mapping[str, Any]] | None) -> list[Rule]:
    return [Rule.parse(r, f"devices[{i}]") for i, r in enumerate(rules or [])]


def _allow(dtype: str, major: int, minor: int, access: str = "rwm") -> Rule:
    return Rule(True, dtype, major, minor, access)


# What runc always allows after the spec's rules (its AllowedDevices list).
DEFAULT_ALLOWED: tuple[Rule, ...] = (
    _allow("c", -1, -1, "m"),  # mknod of any char device (opening still needs a rule)
    _allow("b", -1, -1, "m"),  # mknod of any block device
    _allow("c", 1, 3),  # /dev/null
    _allow("c", 1, 8),  # /dev/random
    _allow("c", 1, 7),  # /dev/full
    _allow("c", 5, 0),  # /dev/tty
    _allow("c", 1, 5),  # /dev/zero
    _allow("c", 1, 9),  # /dev/urandom
    _allow("c", 136, -1),  # /dev/pts/*
    _allow("c", 5, 2),  # /dev/ptmx
    _allow("c", 10, 200),  # /dev/net/tun
)


def container_rules(
    resources_devices: Iterable[Mapping[str, Any]] | None,
    linux_devices: Iterable[Mapping[str, Any]] | None = (),
) -> list[Rule]:
    """The effective rule list as runc builds it: the spec's rules, then an allow rule
    for each linux.devices entry, then the default devices every container gets."""
    rules = parse_rules(resources_devices)
    for dev in linux_devices or []:
        dtype = dev.get("type", "c")
        if dtype in ("c", "u", "b", "p"):
            rules.append(
                _allow(
                    "b" if dtype == "b" else "c",
                    int(dev.get("major", -1)),
                    int(dev.get("minor", -1)),
                )
            )
    rules.extend(DEFAULT_ALLOWED)
    return rules


def v1_writes(rules: list[Rule]) -> list[tuple[str, str]]:
    """(file, line) pairs to write in order; a leading "deny all" resets the cgroup first."""
    return [("devices.allow" if r.allow else "devices.deny", r.v1_line()) for r in rules]


def effective_default(rules: list[Rule]) -> tuple[bool, list[Rule]]:
    """Collapse the list the way the v1 kernel does: the last type-"a" rule sets the
    default (allow or deny everything) and drops every rule before it.

    A fresh cgroup allows everything, so with no "a" rule the default is allow.
    """
    default = True
    start = 0
    for i, r in enumerate(rules):
        if r.is_wildcard_all:
            default, start = r.allow, i + 1
    return default, rules[start:]


class V1State:
    """What a v1 devices cgroup holds: a default (allow or deny everything) and its
    exceptions, keyed (type, major, minor) with their access bits, changed by each write
    as the kernel changes it. Reading it back from devices.list only works for a deny
    default: with an allow default the kernel lists "a *:* rwm" and hides the denials."""

    __slots__ = ("allow", "exceptions")

    def __init__(self, allow: bool, exceptions: dict[tuple[str, int, int], str] | None = None):
        self.allow = allow
        self.exceptions = dict(exceptions or {})

    @classmethod
    def parse_list(cls, text: str) -> V1State:
        """devices.list: "a *:* rwm" alone for an allow default, else the allowed devices."""
        lines = [ln.split() for ln in text.splitlines() if ln.strip()]
        if any(parts[0] == "a" for parts in lines):
            return cls(True)
        state = cls(False)
        for parts in lines:
            if len(parts) != 3 or ":" not in parts[1]:
                raise CgroupError(f"cannot parse devices.list line {' '.join(parts)!r}")
            major, _, minor = parts[1].partition(":")
            key = (parts[0], -1 if major == "*" else int(major), -1 if minor == "*" else int(minor))
            state.exceptions[key] = _access_union(state.exceptions.get(key, ""), parts[2])
        return state

    def copy(self) -> V1State:
        return V1State(self.allow, self.exceptions)

    def apply(self, rule: Rule) -> None:
        """One write of the rule to devices.allow (allow) or devices.deny (deny)."""
        if rule.is_wildcard_all:
            self.allow = rule.allow
            self.exceptions.clear()
            return
        key = (rule.type, rule.major, rule.minor)
        if rule.allow != self.allow:  # an exception to the default: add its bits
            self.exceptions[key] = _access_union(self.exceptions.get(key, ""), rule.access)
            return
        left = "".join(c for c in self.exceptions.get(key, "") if c not in rule.access)
        if left:
            self.exceptions[key] = left
        else:
            self.exceptions.pop(key, None)


def _access_union(a: str, b: str) -> str:
    return "".join(c for c in "rwm" if c in a or c in b)


def _line(key: tuple[str, int, int], access: str) -> str:
    dtype, major, minor = key
    return Rule(True, dtype, major, minor, access).v1_line()


def v1_transition(current: V1State, rules: list[Rule]) -> list[tuple[str, str]]:
    """The writes that take a cgroup from `current` to where writing `rules` would, as
    runc does it: with a deny default before and after, only the devices whose access
    changes (a container being updated never loses, even briefly, an access it keeps);
    a new deny default is one reset then the allowed devices; an allow default, whose
    denials the kernel does not list, gets every rule again."""
    target = current.copy()
    for r in rules:
        target.apply(r)
    if target.allow:
        return v1_writes(rules)
    if current.allow:
        writes = [("devices.deny", "a *:* rwm")]
        return writes + [("devices.allow", _line(k, a)) for k, a in target.exceptions.items()]
    writes = []
    for key, access in current.exceptions.items():
        lost = "".join(c for c in access if c not in target.exceptions.get(key, ""))
        if lost:
            writes.append(("devices.deny", _line(key, lost)))
    for key, access in target.exceptions.items():
        gained = "".join(c for c in access if c not in current.exceptions.get(key, ""))
        if gained:
            writes.append(("devices.allow", _line(key, gained)))
    return writes

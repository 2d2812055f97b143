"""Published ports: `-p` and `-P` into the CNI `portMappings` the portmap plugin takes.

Grammar (docker's): [[HOST_IP:][HOST_PORT[-END]]:]CONTAINER_PORT[-END][/tcp|udp|sctp];
an IPv6 host address goes in brackets. A missing host port (or `-P`) gets a free
one from the kernel's ephemeral range.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from portside.errors import InvalidArgument

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortSpec:
    """One `-p` as written: ranges kept, host_start 0 for "any free port"."""

    container_start: int
    container_end: int
    host_start: int = 0
    host_end: int = 0
    host_ip: str = ""
    protocol: str = "tcp"


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def to_cni(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol,
        }
        if self.host_ip:
            d["hostIP"] = self.host_ip
        return d

    def __str__(self) -> str:
        ip = self.host_ip or "0.0.0.0"
        if ":" in ip:
            ip = f"[{ip}]"
        return f"{self.container_port}/{self.protocol} -> {ip}:{self.host_port}"


def _port(text: str, spec: str, allow_zero: bool = False) -> int:
    if not text.isdigit():
        raise InvalidArgument(f"invalid port {text!r} in -p {spec!r}")
    n = int(text)
    if not (0 if allow_zero else 1) <= n <= 65535:
        raise InvalidArgument(f"port {n} out of range 1-65535 in -p {spec!r}")
    return n


def _range(text: str, spec: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    a = _port(lo, spec)
    b = _port(hi, spec) if sep else a
    if b < a:
        raise InvalidArgument(f"invalid port range {text!r} in -p {spec!r}")
    return a, b


def parse_publish(spec: str) -> PortSpec:
    """One `-p` value; any mistake raises one line quoting it."""
    body, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in -p {spec!r} (tcp, udp or sctp)")
    host_ip = ""
    if body.startswith("["):
        end = body.find("]")
        if end < 0 or body[end + 1 : end + 2] != ":":
            raise InvalidArgument(f"invalid -p {spec!r}: unclosed [IPv6 address]")
        host_ip, rest = body[1:end], body[end + 2 :]
        parts = rest.split(":")
        if len(parts) != 2:
            raise InvalidArgument(f"invalid -p {spec!r}: expected [IP]:HOST_PORT:CONTAINER_PORT")
        host, cont = parts
    else:
        parts = body.split(":")
        if len(parts) == 1:
            host, cont = "", parts[0]
        elif len(parts) == 2:
            host, cont = parts
        elif len(parts) == 3:
            host_ip, host, cont = parts
        else:
            raise InvalidArgument(f"invalid -p {spec!r}: too many ':'")
    if host_ip:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError:
            raise InvalidArgument(f"invalid host IP {host_ip!r} in -p {spec!r}") from None
    if not cont:
        raise InvalidArgument(f"invalid -p {spec!r}: no container port")
    c0, c1 = _range(cont, spec)
    h0, h1 = _range(host, spec) if host else (0, 0)
    if host and h1 - h0 != c1 - c0 and c0 != c1:
        raise InvalidArgument(f"invalid -p {spec!r}: host range and container range differ in size")
    return PortSpec(c0, c1, h0, h1, host_ip, proto)


def parse_exposed(exposed: Iterable[str]) -> list[PortSpec]:
    """`-P`: the image config's ExposedPorts keys ("80/tcp", "53/udp", "8000-8002")."""
    out = []
    for key in exposed:
        port, _, proto = key.partition("/")
        out.append(parse_publish(f"{port}/{proto or 'tcp'}"))
    return out


def free_port(protocol: str = "tcp", host_ip: str = "") -> int:
    """A port the kernel calls free now (bind to 0), in the caller's network namespace."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as s:
        s.bind((host_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0))
        return int(s.getsockname()[1])


def resolve(
    specs: Iterable[PortSpec], allocate: Callable[[str, str], int] = free_port
) -> list[PortMapping]:
    """Concrete mappings: ranges expanded, free ports chosen, clashes refused."""
    out: list[PortMapping] = []
    taken: set[tuple[str, int, str]] = set()

    def claim(m: PortMapping) -> None:
        for ip in {m.host_ip, ""} if m.host_ip else {""}:
            if (ip, m.host_port, m.protocol) in taken:
                raise InvalidArgument(f"host port {m.host_port}/{m.protocol} is published twice")
        taken.add((m.host_ip, m.host_port, m.protocol))
        out.append(m)

    for s in specs:
        count = s.container_end - s.container_start + 1
        if s.host_start and s.container_start == s.container_end and s.host_end > s.host_start:
            # one container port, a host range: the first port of the range not yet used
            for hp in range(s.host_start, s.host_end + 1):
                if (s.host_ip, hp, s.protocol) not in taken and ("", hp, s.protocol) not in taken:
                    claim(PortMapping(hp, s.container_start, s.protocol, s.host_ip))
                    break
            else:
                raise InvalidArgument(f"no free host port in {s.host_start}-{s.host_end}")
            continue
        for i in range(count):
            hp = s.host_start + i if s.host_start else allocate(s.protocol, s.host_ip)
            claim(PortMapping(hp, s.container_start + i, s.protocol, s.host_ip))
    return out


def to_runtime_config(mappings: Iterable[PortMapping]) -> list[dict[str, Any]]:
    return [m.to_cni() for m in mappings]


def from_runtime_config(items: Iterable[Mapping[str, Any]]) -> list[PortMapping]:
    return [
        PortMapping(
            int(i["hostPort"]),
            int(i["containerPort"]),
            str(i.get("protocol", "tcp")),
            str(i.get("hostIP", "")),
        )
        for i in items
    ]

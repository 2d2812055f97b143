"""`-p` / `-P` parsing into CNI portMappings."""

from __future__ import annotations

import pytest

from portside.errors import InvalidArgument
from portside.network.ports import (
    PortMapping,
    PortSpec,
    from_runtime_config,
    parse_exposed,
    parse_publish,
    resolve,
    to_runtime_config,
)


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("80", PortSpec(80, 80)),
        ("8080:80", PortSpec(80, 80, 8080, 8080)),
        ("127.0.0.1:8080:80", PortSpec(80, 80, 8080, 8080, "127.0.0.1")),
        ("127.0.0.1::80", PortSpec(80, 80, 0, 0, "127.0.0.1")),
        ("8080:80/udp", PortSpec(80, 80, 8080, 8080, "", "udp")),
        ("5000-5002:6000-6002/tcp", PortSpec(6000, 6002, 5000, 5002)),
        ("[::1]:8080:80", PortSpec(80, 80, 8080, 8080, "::1")),
        ("[::1]::80/sctp", PortSpec(80, 80, 0, 0, "::1", "sctp")),
        ("9000-9010:80", PortSpec(80, 80, 9000, 9010)),
    ],
)
def test_parse_publish(spec: str, want: PortSpec) -> None:
    assert parse_publish(spec) == want


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("abc", "invalid port"),
        ("70000", "out of range"),
        ("80/icmp", "invalid protocol"),
        ("1.2.3.4.5:80:80", "invalid host IP"),
        ("1:2:3:4", "too many"),
        ("5000-5002:6000-6001", "differ in size"),
        ("90-80", "invalid port range"),
        ("[::1:80:80", "unclosed"),
        ("8080:", "no container port"),
    ],
)
def test_parse_publish_errors_are_one_line_quoting_the_value(spec: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_publish(spec)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_resolve_expands_ranges_and_allocates_missing_host_ports() -> None:
    ports = iter([40001, 40002])
    got = resolve(
        [parse_publish("5000-5001:6000-6001"), parse_publish("127.0.0.1::53/udp")],
        allocate=lambda proto, ip: next(ports),
    )
    assert got == [
        PortMapping(5000, 6000),
        PortMapping(5001, 6001),
        PortMapping(40001, 53, "udp", "127.0.0.1"),
    ]
    assert to_runtime_config(got)[2] == {
        "hostPort": 40001,
        "containerPort": 53,
        "protocol": "udp",
        "hostIP": "127.0.0.1",
    }
    assert from_runtime_config(to_runtime_config(got)) == got
    assert str(got[2]) == "53/udp -> 127.0.0.1:40001"


def test_resolve_refuses_a_host_port_twice_but_allows_other_protocols() -> None:
    with pytest.raises(InvalidArgument, match="published twice"):
        resolve([parse_publish("8080:80"), parse_publish("127.0.0.1:8080:81")])
    assert len(resolve([parse_publish("8080:80"), parse_publish("8080:80/udp")])) == 2


def test_host_range_with_one_container_port_takes_the_first_free() -> None:
    got = resolve([parse_publish("9000:81"), parse_publish("9000-9002:80")])
    assert got[1] == PortMapping(9001, 80)


def test_publish_all_from_exposed_ports_gets_free_host_ports() -> None:
    specs = parse_exposed(["80/tcp", "53/udp", "8000"])
    assert [(s.container_start, s.protocol, s.host_start) for s in specs] == [
        (80, "tcp", 0),
        (53, "udp", 0),
        (8000, "tcp", 0),
    ]
    got = resolve(specs)  # the kernel's free ports, in this namespace
    assert all(1024 <= m.host_port <= 65535 for m in got)
    assert [m.container_port for m in got] == [80, 53, 8000]

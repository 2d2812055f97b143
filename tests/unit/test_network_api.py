"""`--network` values and the engine-facing result helpers (no plugins run)."""

from __future__ import annotations

import pytest

from portside.errors import InvalidArgument
from portside.network.api import NetworkMode, NetworkStatus, SetupResult, parse_network_mode
from portside.network.ports import PortMapping


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (None, NetworkMode("bridge", networks=("portside",))),
        ("bridge", NetworkMode("bridge", networks=("portside",))),
        ("none", NetworkMode("none")),
        ("host", NetworkMode("host")),
        ("container:abc123", NetworkMode("container", "abc123")),
        ("ns:/run/netns/x", NetworkMode("ns", "/run/netns/x")),
        ("front,back", NetworkMode("bridge", networks=("front", "back"))),
    ],
)
def test_parse_network_mode(value: str | None, want: NetworkMode) -> None:
    assert parse_network_mode(value) == want


def test_which_modes_get_a_namespace_of_their_own() -> None:
    assert parse_network_mode("none").needs_netns and parse_network_mode("a").needs_netns
    assert not parse_network_mode("host").needs_netns
    assert not parse_network_mode("container:x").needs_netns


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("container:", "needs a value"),
        ("a,none", "cannot be combined"),
        ("a,a", "named twice"),
        ("bad/name", "invalid network name"),
    ],
)
def test_bad_network_modes(value: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        parse_network_mode(value)


def test_setup_result_writes_the_container_files() -> None:
    st = NetworkStatus("n", "eth0", ["10.9.0.2/24"], "02:00:00:00:00:01", "10.9.0.1", {})
    peers = [("10.9.0.3", ["db"])]
    res = SetupResult("cid", "/x", [st], [PortMapping(8080, 80)], ["10.9.0.1"], peers)
    hosts = res.hosts("web", ["web", "w"])
    assert "10.9.0.2\tweb w" in hosts and "10.9.0.3\tdb" in hosts
    assert res.resolv("nameserver 192.0.2.1\n") == (
        "search dns.portside\nnameserver 10.9.0.1\nnameserver 192.0.2.1\n"
    )
    assert st.addresses == ["10.9.0.2"]

"""The engine's network plan at create, and inspect's view of it (no namespace is made and
no plugin runs: the plan only reads network configs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from portside.engine.api import CreateOptions
from portside.engine.inspect import network_settings
from portside.engine.networking import EngineNetworking, default_network, network_mode_name
from portside.errors import ConfigError, InvalidArgument, NotFound

CID = "c" * 64


@pytest.fixture
def en(tmp_path: Path) -> EngineNetworking:
    return EngineNetworking(tmp_path / "root", tmp_path / "run", {})


def _no_lookup(ref: str) -> dict[str, Any]:
    raise NotFound(f"no such container: {ref}")


def test_the_default_network_comes_from_env_then_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTSIDE_DEFAULT_NETWORK", raising=False)
    assert default_network({}) == "private"  # podman's word: the default bridge network
    assert default_network({"default_network": "none"}) == "none"
    monkeypatch.setenv("PORTSIDE_DEFAULT_NETWORK", "host")
    assert default_network({"default_network": "none"}) == "host"


def test_bridge_plan_pins_a_namespace_and_resolves_ports(en: EngineNetworking) -> None:
    opts = CreateOptions(
        "img",
        network="private",
        publish=["127.0.0.1:8080:80", "9000-9001:7000-7001/udp"],
        publish_all=True,
        network_aliases=["web"],
        ip="10.88.0.9",
    )
    plan = en.plan(opts, CID, ["80/tcp", "443/tcp"], _no_lookup)
    assert plan["mode"] == "bridge"
    assert plan["netns"] == str(en.runroot / "netns" / CID)
    assert plan["requests"] == [
        {"name": "portside", "ip": "10.88.0.9", "mac": None, "aliases": ["web"]}
    ]
    ports = {(p["containerPort"], p["protocol"]): p for p in plan["ports"]}
    assert ports[(80, "tcp")] == {
        "hostPort": 8080,
        "containerPort": 80,
        "protocol": "tcp",
        "hostIP": "127.0.0.1",
    }
    assert ports[(7001, "udp")]["hostPort"] == 9001
    assert 0 < ports[(443, "tcp")]["hostPort"] <= 65535  # -P: a free one, only 443 (80 given)
    assert len(plan["ports"]) == 4
    assert network_mode_name(plan) == "bridge"


@pytest.mark.parametrize("mode", ["none", "host"])
def test_port_and_address_flags_need_a_bridge_network(en: EngineNetworking, mode: str) -> None:
    for extra in ({"publish": ["80"]}, {"ip": "10.0.0.2"}, {"network_aliases": ["a"]}):
        with pytest.raises(InvalidArgument, match=f"needs a bridge network, not --network {mode}"):
            en.plan(CreateOptions("img", network=mode, **extra), CID, [], _no_lookup)


def test_host_none_and_container_plans(en: EngineNetworking) -> None:
    host = en.plan(CreateOptions("img", network="host"), CID, ["80/tcp"], _no_lookup)
    assert (host["mode"], host["netns"], host["ports"]) == ("host", "", [])
    none = en.plan(CreateOptions("img", network="none", publish_all=True), CID, [], _no_lookup)
    assert (none["mode"], none["ports"]) == ("none", [])
    other = {"id": "d" * 64, "net": {"mode": "bridge", "netns": "/run/x/netns/" + "d" * 64}}
    shared = en.plan(CreateOptions("img", network="container:dd"), CID, [], lambda r: other)
    assert shared["mode"] == "container" and shared["netns"] == other["net"]["netns"]
    assert network_mode_name(shared) == f"container:{'d' * 64}"
    on_host = {"id": "e" * 64, "net": {"mode": "host", "netns": ""}}
    assert (
        en.plan(CreateOptions("img", network="container:e"), CID, [], lambda r: on_host)["mode"]
        == "host"
    )


def test_unknown_and_broken_networks_are_one_line_naming_them(en: EngineNetworking) -> None:
    with pytest.raises(NotFound, match="network nosuch not found"):
        en.plan(CreateOptions("img", network="nosuch"), CID, [], _no_lookup)
    d = en.root / "networks"
    d.mkdir(parents=True)
    (d / "bad.conflist").write_text("{")
    with pytest.raises(ConfigError, match=re.escape(str(d / "bad.conflist"))):
        en.plan(CreateOptions("img", network="bad"), CID, [], _no_lookup)
    with pytest.raises(InvalidArgument, match="not a network namespace"):
        en.plan(CreateOptions("img", network="ns:/etc/passwd"), CID, [], _no_lookup)
    ns = en.plan(CreateOptions("img", network="ns:/proc/self/ns/net"), CID, [], _no_lookup)
    assert (ns["mode"], ns["netns"]) == ("ns", "/proc/self/ns/net")
    assert network_mode_name(ns) == "ns:/proc/self/ns/net"


def test_network_settings_look_like_podmans() -> None:
    doc = {
        "id": CID,
        "net": {
            "mode": "bridge",
            "netns": "/run/p/netns/" + CID,
            "requests": [{"name": "portside", "aliases": ["web"]}, {"name": "back"}],
            "ports": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        },
        "net_status": {
            "networks": [
                {
                    "network": "portside",
                    "ips": ["10.88.0.5/16"],
                    "mac": "02:00:00:00:00:05",
                    "gateway": "10.88.0.1",
                },
                {"network": "back", "ips": ["10.89.0.7/24"], "mac": "m", "gateway": "10.89.0.1"},
            ]
        },
    }
    ns = network_settings(doc, running=True)
    assert (ns["IPAddress"], ns["IPPrefixLen"], ns["Gateway"]) == ("10.88.0.5", 16, "10.88.0.1")
    assert ns["MacAddress"] == "02:00:00:00:00:05"
    assert ns["Ports"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert ns["Networks"]["back"]["IPAddress"] == "10.89.0.7"
    assert ns["Networks"]["portside"]["Aliases"] == [CID[:12], "web"]
    assert ns["SandboxKey"] == "/run/p/netns/" + CID
    stopped = network_settings(doc, running=False)
    assert stopped["IPAddress"] == "" and stopped["Networks"]["back"]["IPAddress"] == ""
    assert stopped["Ports"] == ns["Ports"]  # bindings stay (as podman shows them)

"""`portside network ...`: config management through the command line (no plugins run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def portside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portside.cli", *args], capture_output=True, text=True
    )


def test_network_create_ls_inspect_rm_prune(state_roots: tuple[Path, Path]) -> None:
    root, _ = state_roots
    r = portside("network", "create", "--subnet", "10.42.0.0/24", "--label", "a=b", "front")
    assert r.returncode == 0 and r.stdout == "front\n", r.stderr
    assert portside("network", "create", "--internal", "back").returncode == 0
    assert (root / "networks" / "front.conflist").exists()
    ls = portside("network", "ls").stdout.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SUBNET"]
    assert [ln.split()[1] for ln in ls[1:]] == ["back", "front", "portside"]
    assert "10.42.0.0/24" in ls[2] and "10.88.0.0/16" in ls[3]
    assert portside("network", "ls", "-q", "--filter", "label=a=b").stdout == "front\n"
    doc = json.loads(portside("network", "inspect", "front").stdout)[0]
    assert doc["subnets"] == [{"subnet": "10.42.0.0/24", "gateway": "10.42.0.1"}]
    assert doc["labels"] == {"a": "b"} and doc["dns_enabled"] and doc["driver"] == "bridge"
    assert doc["network_interface"] == "portside1" and doc["containers"] == []
    back = json.loads(portside("network", "inspect", "back").stdout)[0]
    assert back["internal"] is True and back["subnets"][0]["subnet"] == "10.89.0.0/24"
    r = portside("network", "create", "--subnet", "10.42.0.128/25", "clash")
    assert r.returncode == 125
    assert r.stderr == "Error: subnet 10.42.0.128/25 overlaps 10.42.0.0/24 of network front\n"
    r = portside("network", "inspect", "nope")
    assert r.returncode == 125 and r.stderr == "Error: network nope not found\n"
    r = portside("network", "rm", "portside")
    assert r.returncode == 125 and "default network" in r.stderr
    assert portside("network", "rm", "front").stdout == "front\n"
    assert portside("network", "prune", "-f").stdout == "back\n"
    assert portside("network", "ls", "-q").stdout == "portside\n"

"""A network podman made (its CNI conflist, cniVersion 0.4.0) works through our CNI
invocation, read from an /etc/cni/net.d-style directory."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from portside.network.api import Networking, NetworkRequest
from portside.network.ports import parse_publish, resolve
from tests.conftest import need_tool
from tests.integration.test_network_cni import Host, host, ping  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.interop, pytest.mark.timeout(120)]


def podman_network_create(confdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`podman network create` writing only into `confdir` (its own throw-away state roots:
    podman wants a run root path under 50 characters, hence not under tmp_path)."""
    podman = need_tool("podman")
    short = Path(tempfile.mkdtemp(prefix="psn-"))
    try:
        return subprocess.run(
            [
                podman,
                "--root",
                str(short / "root"),
                "--runroot",
                str(short / "run"),
                "--network-config-dir",
                str(confdir),
                "network",
                "create",
                *args,
            ],
            capture_output=True,
            text=True,
        )
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_podmans_conflist_sets_up_containers(host: Host, tmp_path: Path) -> None:  # noqa: F811
    confdir = tmp_path / "net.d"
    confdir.mkdir()
    r = podman_network_create(confdir, "--disable-dns", "--subnet", "10.93.0.0/24", "podnet")
    assert r.returncode == 0, r.stderr
    net = Networking(
        host.net.root, host.net.runroot, config_dirs=[str(confdir)], host_netns=str(host.path)
    )
    conf = net.store.get("podnet")
    assert conf.cni_version == "0.4.0" and conf.bridge == "cni-podman1"
    a, b = host.container("pa"), host.container("pb")
    ra = net.setup("pa", a, [NetworkRequest("podnet")], ports=resolve([parse_publish("81:80")]))
    rb = net.setup("pb", b, [NetworkRequest("podnet", ip="10.93.0.50")])
    assert ra.networks[0].ips[0].startswith("10.93.0.")
    assert rb.networks[0].ips == ["10.93.0.50/24"]
    assert ping(host, a, "10.93.0.50").returncode == 0
    assert net.check("pa") == ["podnet"]  # CHECK exists from 0.4.0
    net.teardown("pa")
    net.teardown("pb")
    assert host.veths() == [] and host.leases() == [] and host.container_rules() == []

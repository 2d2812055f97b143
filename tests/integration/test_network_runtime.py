"""An OCI runtime joins a namespace we set up by path, and the container gets its network,
its /etc/hosts and /etc/resolv.conf: a name lookup and an HTTP fetch from inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portside.network.api import NetworkRequest
from portside.testing.runtime_suite import Runtime, base_spec, make_rootfs
from tests.conftest import need_tool
from tests.integration.test_network_cni import BUSYBOX, Host, host  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.interop, pytest.mark.timeout(120)]

PORTSIDE_RUNTIME = str(Path(sys.executable).with_name("portside-runtime"))


def runtimes(tmp_path: Path) -> dict[str, Runtime]:
    return {
        "runc": Runtime("runc", [need_tool("runc"), "--root", str(tmp_path / "runc")]),
        "portside": Runtime("portside", [PORTSIDE_RUNTIME, "--root", str(tmp_path / "prt")]),
    }


@pytest.mark.parametrize("runtime", ["runc", "portside"])
def test_container_in_our_netns_reaches_a_peer_by_name(
    host: Host,  # noqa: F811
    tmp_path: Path,
    runtime: str,
) -> None:
    rt = runtimes(tmp_path)[runtime]
    host.net.store.create("apps", subnet="10.71.0.0/24")
    web, client = host.container("web"), host.container("client")
    web_net = host.net.setup("web", web, [NetworkRequest("apps")], name="web").networks[0]
    web_ip = web_net.addresses[0]
    res = host.net.setup("client", client, [NetworkRequest("apps")], name="client")
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("served by web\n")
    httpd = subprocess.Popen(
        ["nsenter", f"--net={web}", BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(www)]
    )
    try:
        rootfs = make_rootfs(tmp_path / "rootfs")
        (tmp_path / "hosts").write_text(res.hosts("client", ["client"]))
        (tmp_path / "resolv.conf").write_text(res.resolv("nameserver 127.0.0.53\n"))
        script = (
            "ip -o -4 addr show eth0; "
            "for i in $(seq 100); do wget -q -O - http://web/ && break; sleep 0.05; done; "
            f"echo DNS:$(nslookup web.dns.portside | grep -c 'Address: {web_ip}$'); "
            "cat /etc/resolv.conf"
        )
        spec = base_spec(str(rootfs), ["/bin/sh", "-c", script])
        spec["linux"]["namespaces"] = [
            {"type": "network", "path": str(client)} if n["type"] == "network" else n
            for n in spec["linux"]["namespaces"]
        ]
        spec["linux"]["cgroupsPath"] = f"/portside-nettest-{os.getpid()}-{runtime}"
        for f in ("hosts", "resolv.conf"):
            spec["mounts"].append(
                {
                    "destination": f"/etc/{f}",
                    "type": "bind",
                    "source": str(tmp_path / f),
                    "options": ["rbind", "ro"],
                }
            )
        bundle = tmp_path / "bundle"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(spec))
        r = rt("run", "--bundle", str(bundle), f"nettest-{os.getpid()}")
        out = r.stdout.decode()
        assert r.returncode == 0, out + r.stderr.decode()
        assert f"inet {res.networks[0].ips[0]}" in out
        assert "served by web\n" in out
        assert "nameserver 10.71.0.1" in out
        assert "DNS:1\n" in out  # the responder answered the name, with web's address
    finally:
        httpd.kill()
        httpd.wait()
    host.net.teardown("web")
    host.net.teardown("client")
    assert host.veths() == [] and host.leases() == []

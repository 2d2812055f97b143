"""Networking end to end with Debian's CNI plugins, each test on its own "host".

The host of every test is a network namespace the test makes: the plugins run
inside it (Networking(host_netns=...)), so the bridge, the veths, the iptables
rules and the DNS responder all live there; traffic stays inside it and on its
loopback. At the end every namespace is removed and the real host is checked
for leftovers (veths, namespaces, mounts).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portside.errors import AlreadyExists, CniPluginError, ConfigError, InUse, NotFound
from portside.network import dns, netns
from portside.network.api import Networking, NetworkRequest
from portside.network.cleanup import cleanup
from portside.network.ports import parse_publish, resolve
from tests.conftest import need_root, need_tool
from tests.fixtures.links import links_here, new_links_here

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

BUSYBOX = "/bin/busybox"


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(str(path))]


@dataclass
class Host:
    """A test's host side: its namespace and the Networking that uses it."""

    path: Path
    runroot: Path
    net: Networking

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return netns.run_in(self.path, list(argv), capture_output=True, text=True, check=check)

    def iptables(self) -> str:
        out = ""
        for table in ("filter", "nat"):
            out += self.run("iptables-save", "-t", table).stdout
        return "\n".join(ln for ln in out.splitlines() if ln.startswith("-A "))

    def container_rules(self) -> list[str]:
        """Rules that belong to one container (the shared CNI-HOSTPORT-*/CNI-FORWARD chains
        the plugins make once and keep are not): id comments, per-container chains, the
        firewall plugin's per-address rules."""
        per = re.compile(r'id: \\"|CNI-DN-|CNI-[0-9a-f]{20}|-A CNI-FORWARD -[ds] ')
        return [ln for ln in self.iptables().splitlines() if per.search(ln)]

    def veths(self) -> list[str]:
        out = self.run("ip", "-o", "link", "show", "type", "veth").stdout
        return [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines()]

    def leases(self) -> list[str]:
        d = self.net.ipam_dir
        return [
            str(p.relative_to(d))
            for p in d.rglob("*")
            if p.is_file() and re.match(r"^[0-9a-f.:]+$", p.name)
        ]

    def container(self, name: str) -> Path:
        return self.net.create_netns(name)

    def in_container(
        self, ns: Path, *argv: str, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return netns.run_in(ns, list(argv), capture_output=True, text=True, check=check)


@pytest.fixture
def host(tmp_path: Path, state_roots: tuple[Path, Path]) -> Iterator[Host]:
    need_root()
    need_tool("iptables")
    root, runroot = state_roots
    links_before = links_here()
    netns_before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    hostrun = tmp_path / "hostns"
    path = netns.create(hostrun, "host")
    # the responders forward unknown names to the test host's own loopback (see test_two_...)
    net = Networking(root, runroot, host_netns=str(path), dns_upstreams=["127.0.0.1"])
    h = Host(path, runroot, net)
    try:
        yield h
    finally:
        for d in (runroot / "dns").glob("*") if (runroot / "dns").is_dir() else []:
            dns.stop_responder(runroot / "dns", d.name)
        for p in netns.list_all(runroot):
            netns.remove(p)
        netns.release_dir(runroot)
        netns.remove(path)
        netns.release_dir(hostrun)
    assert _mounts_under(tmp_path) == []
    assert new_links_here(links_before) == set()
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert after == netns_before


def ping(h: Host, ns: Path, target: str) -> subprocess.CompletedProcess[str]:
    return h.in_container(ns, BUSYBOX, "ping", "-c1", "-W5", target)


def test_two_containers_on_a_bridge_get_addresses_and_reach_each_other(host: Host) -> None:
    conf = host.net.store.create("appnet", subnet="10.77.0.0/24")
    c1, c2 = host.container("c1"), host.container("c2")
    r1 = host.net.setup("c1", c1, [NetworkRequest("appnet", aliases=["one"])], name="web")
    r2 = host.net.setup("c2", c2, [NetworkRequest("appnet")], name="db")
    a1, a2 = r1.networks[0].addresses[0], r2.networks[0].addresses[0]
    assert a1 != a2
    for a in (a1, a2):
        assert a.startswith("10.77.0.")
    assert r1.networks[0].gateway == "10.77.0.1" == conf.gateway()
    assert r1.networks[0].ifname == "eth0"
    assert f"inet {a1}/24" in host.in_container(c1, "ip", "-o", "-4", "addr").stdout
    # the bridge lives in the test's host namespace, not in ours
    assert "portside1" in host.run("ip", "-o", "link").stdout
    assert "portside1" not in links_here()
    assert ping(host, c1, a2).returncode == 0, "c1 cannot reach c2"
    assert ping(host, c2, a1).returncode == 0, "c2 cannot reach c1"
    # the second container's hosts file knows the first by name and alias
    assert r2.peers == [(a1, ["web", "c1", "one"])]
    hosts = r2.hosts("db", ["db"])
    assert f"{a1}\tweb c1 one" in hosts and f"{a2}\tdb" in hosts
    # ... and a resolver reading it (busybox, /etc/hosts bound in a private mount ns) agrees
    hosts_file = host.runroot / "c2.hosts"
    hosts_file.write_text(hosts)
    r = host.in_container(
        c2,
        "unshare",
        "-m",
        "sh",
        "-c",
        f"mount --bind {hosts_file} /etc/hosts && {BUSYBOX} ping -c1 -W5 one",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"({a1})" in r.stdout or a1 in r.stdout
    # and by name through the network's DNS responder on the gateway
    assert r2.dns_servers == ["10.77.0.1"]
    assert "nameserver 10.77.0.1" in r2.resolv("nameserver 127.0.0.53\n")
    for name in ("web", "one", "web.dns.portside"):
        r = host.in_container(c2, BUSYBOX, "nslookup", name, "10.77.0.1")
        assert a1 in r.stdout, f"{name}: {r.stdout}{r.stderr}"
    # other names go to the upstream server: here another responder on the test host's lo
    up = host.runroot / "upstream"
    dns.register(up, "up", "x", ["outside.example"], ["192.0.2.10"])
    dns.start_responder(up, "up", "127.0.0.1", host_netns=str(host.path), upstreams=[])
    try:
        r = host.in_container(c2, BUSYBOX, "nslookup", "outside.example", "10.77.0.1")
        assert "192.0.2.10" in r.stdout, r.stdout + r.stderr
        r = host.in_container(c2, BUSYBOX, "nslookup", "nosuchname", "10.77.0.1")
        assert r.returncode != 0 and "NXDOMAIN" in r.stdout + r.stderr
    finally:
        dns.stop_responder(up, "up")
    # the responder answers only on the gateway address
    assert "10.77.0.1:53" in host.run("ss", "-uln").stdout
    host.net.teardown("c1")
    # a name leaves with its container
    r = host.in_container(c2, BUSYBOX, "nslookup", "web", "10.77.0.1")
    assert a1 not in r.stdout
    host.net.teardown("c2")
    assert dns.responder_pid(host.runroot / "dns", "appnet") is None
    assert host.veths() == []
    assert host.leases() == []


def test_published_port_reaches_httpd_from_the_host_side(host: Host, tmp_path: Path) -> None:
    c = host.container("web")
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the container\n")
    mappings = resolve([parse_publish("127.0.0.1:18080:80")])
    res = host.net.setup("web", c, [NetworkRequest("portside")], ports=mappings)
    assert res.networks[0].addresses[0].startswith("10.88.")
    httpd = subprocess.Popen(
        ["nsenter", f"--net={c}", BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(www)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = ""
        for _ in range(100):  # until httpd has bound; no timing is asserted
            r = host.run(BUSYBOX, "wget", "-q", "-O", "-", "http://127.0.0.1:18080/", check=False)
            if r.returncode == 0:
                body = r.stdout
                break
            time.sleep(0.05)
        assert body == "hello from the container\n"
        # portmap made 127.0.0.1 routable to the bridge: that is what makes this work
        bridge = host.run("cat", "/proc/sys/net/ipv4/conf/portside0/route_localnet").stdout
        assert bridge.strip() == "1"
        assert [str(p) for p in host.net.ports("web")] == ["80/tcp -> 127.0.0.1:18080"]
        assert host.net.status("web")[0].ips == res.networks[0].ips
    finally:
        httpd.kill()
        httpd.wait()
    host.net.teardown("web")
    assert "18080" not in host.iptables()


def test_none_has_only_loopback(host: Host) -> None:
    c = host.container("lonely")
    links = host.in_container(c, "ip", "-o", "link").stdout.splitlines()
    assert len(links) == 1 and ": lo:" in links[0] and "UP" in links[0]
    assert host.in_container(c, BUSYBOX, "ping", "-c1", "-W2", "127.0.0.1").returncode == 0
    host.net.remove_netns(c)
    assert not c.exists()


@pytest.mark.timeout(240)
def test_add_del_cycles_leave_nothing_behind(host: Host) -> None:
    c = host.container("cycle")
    mappings = resolve([parse_publish("127.0.0.1:18081:80")])
    host.net.setup("warm", c, [NetworkRequest("portside")], ports=mappings)
    host.net.teardown("warm")
    base_rules = host.iptables()
    seen_ips = set()
    for i in range(30):
        cid = f"cycle{i:02d}"
        res = host.net.setup(cid, c, [NetworkRequest("portside")], ports=mappings)
        seen_ips.add(res.networks[0].addresses[0])
        assert len(host.veths()) == 1
        host.net.teardown(cid)
    assert host.veths() == []
    assert host.leases() == []
    assert host.iptables() == base_rules
    assert host.container_rules() == []
    assert "cycle" not in host.iptables()
    assert host.net.attachments("cycle29") == []
    assert len(host.in_container(c, "ip", "-o", "link").stdout.splitlines()) == 1
    assert len(seen_ips) >= 1


def test_broken_conflist_is_one_line_naming_it_and_leaves_nothing(host: Host) -> None:
    d = host.net.store.directory
    d.mkdir(parents=True, exist_ok=True)
    (d / "broken.conflist").write_text('{"cniVersion": "1.0.0", "name": "broken", "plugins": [')
    c = host.container("b")
    with pytest.raises(ConfigError) as err:
        host.net.setup("b", c, [NetworkRequest("broken")])
    msg = str(err.value)
    assert "\n" not in msg and "broken.conflist" in msg and "JSON" in msg
    assert host.veths() == [] and host.leases() == []
    assert host.net.attachments("b") == []


def test_missing_plugin_is_one_line_naming_it_and_leaves_nothing(host: Host) -> None:
    conf = json.loads(host.net.store.ensure_default().to_json())
    conf["name"] = "halfway"
    conf["plugins"][0]["bridge"] = "halfway0"
    conf["plugins"].insert(2, {"type": "nosuchplugin"})
    d = host.net.store.directory
    (d / "halfway.conflist").write_text(json.dumps(conf))
    c = host.container("m")
    with pytest.raises(CniPluginError) as err:
        host.net.setup("m", c, [NetworkRequest("halfway")])
    msg = str(err.value)
    assert "\n" not in msg and "nosuchplugin" in msg and "halfway" in msg
    assert err.value.plugin == "nosuchplugin"
    # found missing before any plugin ran: no bridge, veth, lease or rule
    assert "halfway0" not in host.run("ip", "-o", "link").stdout
    assert host.veths() == [] and host.leases() == [] and host.iptables() == ""
    assert host.container_rules() == []


def test_plugin_failure_midway_is_rolled_back(host: Host) -> None:
    """The bridge, IPAM and portmap run, then the tuning plugin fails: everything is undone."""
    conf = json.loads(host.net.store.ensure_default().to_json())
    conf["name"] = "failing"
    conf["plugins"][0]["bridge"] = "failing0"
    conf["plugins"].append({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.nosuchknob": "1"}})
    (host.net.store.directory / "failing.conflist").write_text(json.dumps(conf))
    c = host.container("f")
    with pytest.raises(CniPluginError) as err:
        host.net.setup("f", c, [NetworkRequest("failing")], ports=resolve([parse_publish("9:9")]))
    msg = str(err.value)
    assert "\n" not in msg and "tuning" in msg and "failing" in msg and "(ADD)" in msg
    assert host.veths() == [] and host.leases() == []
    assert host.container_rules() == []
    assert host.net.attachments("f") == []


def test_result_cache_lets_del_work_after_a_crash(
    host: Host, state_roots: tuple[Path, Path]
) -> None:
    """ADD in a process that then dies; a new process, knowing only the state dirs and the
    container id, tears everything down (the conflist is even gone meanwhile)."""
    root, runroot = state_roots
    host.net.store.create("crashnet", subnet="10.66.0.0/24")
    c = host.container("crash")
    code = f"""
import os
from portside.network.api import Networking, NetworkRequest
from portside.network.ports import parse_publish, resolve
n = Networking({str(root)!r}, {str(runroot)!r}, host_netns={str(host.path)!r})
n.setup("crash", {str(c)!r}, [NetworkRequest("crashnet")],
        ports=resolve([parse_publish("127.0.0.1:18082:80")]), name="crashy")
os._exit(9)  # no clean-up of any kind
"""
    import sys

    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 9, p.stderr
    assert len(host.veths()) == 1 and len(host.leases()) == 1
    assert "crash" in host.iptables()
    (host.net.store.directory / "crashnet.conflist").unlink()
    fresh = Networking(root, runroot, host_netns=str(host.path))
    assert [e.network for e in fresh.attachments("crash")] == ["crashnet"]
    assert fresh.check("crash") == ["crashnet"]
    fresh.teardown("crash")
    assert host.veths() == [] and host.leases() == []
    assert "crash" not in host.iptables() and "18082" not in host.iptables()
    assert host.container_rules() == []
    assert fresh.attachments("crash") == []


def test_cleanup_removes_what_dead_containers_left(host: Host) -> None:
    """Start-up clean-up: stale attachments (DEL from the cache), namespaces, leases and rules
    of containers that are gone; the live one is left alone."""
    live, dead = host.container("live"), host.container("dead")
    host.net.setup("live", live, [NetworkRequest("portside")])
    host.net.setup(
        "dead", dead, [NetworkRequest("portside")], ports=resolve([parse_publish("7:7")])
    )
    # the worst crash: the cache entry is lost too, only the kernel state remains
    (host.runroot / "cni" / "results" / "portside-dead-eth0.json").unlink()
    lease_dir = host.net.ipam_dir / "portside"
    stale = lease_dir / "10.88.255.254"
    stale.write_text("ghost\r\neth0")
    report = cleanup(host.net, live_ids={"live"})
    assert report.netns == ["dead"]
    assert len(report.leases) == 2 and any("ghost" in lease for lease in report.leases)
    assert any('id: \\"dead\\"' in r for r in report.rules)
    assert report.errors == []
    assert not dead.exists() and live.exists()
    assert len(host.veths()) == 1
    assert not stale.exists()
    assert "dead" not in host.iptables()
    assert 'id: \\"live\\"' in host.iptables()
    host.net.teardown("live")
    assert host.veths() == [] and host.leases() == []
    assert host.container_rules() == []


def test_static_ip_mac_and_a_second_network(host: Host) -> None:
    host.net.store.create("back", subnet="10.55.0.0/24", internal=True)
    c = host.container("multi")
    res = host.net.setup(
        "multi",
        c,
        [
            NetworkRequest("portside", ip="10.88.7.7", mac="02:42:0a:58:07:07"),
            NetworkRequest("back"),
        ],
    )
    front, back = res.networks
    assert (front.ifname, front.ips, front.mac) == ("eth0", ["10.88.7.7/16"], "02:42:0a:58:07:07")
    assert back.ifname == "eth1" and back.ips[0].startswith("10.55.0.")
    links = host.in_container(c, "ip", "-o", "link").stdout
    assert "eth0" in links and "eth1" in links and "02:42:0a:58:07:07" in links
    routes = host.in_container(c, "ip", "route").stdout
    assert "default via 10.88.0.1" in routes and "10.55.0.1" not in routes.split("\n")[0]
    assert sorted(host.net.check("multi")) == ["back", "portside"]
    assert host.net.in_use("back") == ["multi"]
    # the same address twice is refused by IPAM, in one line, and leaves nothing new
    other = host.container("other")
    with pytest.raises(CniPluginError) as err:
        host.net.setup("other", other, [NetworkRequest("portside", ip="10.88.7.7")])
    assert "10.88.7.7" in str(err.value) and "\n" not in str(err.value)
    assert len(host.veths()) == 2
    host.net.teardown("multi")
    assert host.veths() == [] and host.leases() == [] and host.container_rules() == []


def test_a_dropping_forward_chain_gets_the_firewall_plugin(host: Host) -> None:
    """Where FORWARD drops (docker, ufw), our networks carry the firewall plugin, which opens
    it per container: a container reaches one on another network through the host side."""
    host.run("iptables", "-P", "FORWARD", "DROP")
    net1 = host.net.store.create("left", subnet="10.61.0.0/24")
    host.net.store.create("right", subnet="10.62.0.0/24")
    assert [p["type"] for p in net1.plugins] == ["bridge", "portmap", "firewall"]
    a, b = host.container("a"), host.container("b")
    host.net.setup("a", a, [NetworkRequest("left")])
    rb = host.net.setup("b", b, [NetworkRequest("right")])
    assert ping(host, a, rb.networks[0].addresses[0]).returncode == 0
    assert "-A CNI-FORWARD -s 10.61.0." in host.iptables()
    host.net.teardown("a")
    host.net.teardown("b")
    assert host.container_rules() == [] and host.leases() == []


def test_an_accepting_forward_chain_spares_the_firewall_plugin(host: Host) -> None:
    assert [p["type"] for p in host.net.store.ensure_default().plugins] == ["bridge", "portmap"]


def test_connect_disconnect_and_no_second_add(host: Host) -> None:
    c = host.container("cd")
    host.net.setup("cd", c, [NetworkRequest("portside")], name="cdname")
    with pytest.raises(AlreadyExists, match="already on network portside"):
        host.net.setup("cd", c, [NetworkRequest("portside")])
    assert len(host.veths()) == 1
    host.net.store.create("extra", subnet="10.63.0.0/24")
    st = host.net.connect("cd", c, NetworkRequest("extra", aliases=["cda"]), name="cdname")
    assert st.ifname == "eth1" and st.ips[0].startswith("10.63.0.")
    assert "eth1" in host.in_container(c, "ip", "-o", "link").stdout
    reg = dns.read_registry(host.runroot / "dns", "extra")
    assert reg.lookup("cda") == st.addresses
    assert dns.responder_pid(host.runroot / "dns", "extra") is not None
    with pytest.raises(AlreadyExists):
        host.net.connect("cd", c, NetworkRequest("extra"))
    host.net.disconnect("cd", "extra")
    assert "eth1" not in host.in_container(c, "ip", "-o", "link").stdout
    assert dns.responder_pid(host.runroot / "dns", "extra") is None
    with pytest.raises(NotFound, match="not on network extra"):
        host.net.disconnect("cd", "extra")
    assert [e.network for e in host.net.attachments("cd")] == ["portside"]
    host.net.teardown("cd")
    assert host.veths() == [] and host.leases() == []


def test_parallel_setups_get_distinct_addresses_and_one_responder(
    host: Host, state_roots: tuple[Path, Path]
) -> None:
    import sys

    root, runroot = state_roots
    host.net.store.create("par", subnet="10.64.0.0/24")
    paths = [host.container(f"p{i}") for i in range(4)]
    code = """
import sys
from portside.network.api import Networking, NetworkRequest
root, runroot, hostns, cid, ns = sys.argv[1:]
n = Networking(root, runroot, host_netns=hostns, dns_upstreams=[])
print(n.setup(cid, ns, [NetworkRequest("par")], name=cid).networks[0].addresses[0])
"""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(root), str(runroot), str(host.path), f"p{i}", str(p)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, p in enumerate(paths)
    ]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1] for o in outs]
    addrs = {o[0].strip() for o in outs}
    assert len(addrs) == 4 and all(a.startswith("10.64.0.") for a in addrs)
    assert host.run("ss", "-uln").stdout.count("10.64.0.1:53") == 1
    r = host.in_container(paths[0], BUSYBOX, "nslookup", "p3", "10.64.0.1")
    assert r.returncode == 0, r.stdout + r.stderr
    for i in range(4):
        host.net.teardown(f"p{i}")
    assert host.veths() == [] and host.leases() == []
    assert dns.responder_pid(host.runroot / "dns", "par") is None


def test_cleanup_after_the_worst_crash_veth_pinned_elsewhere_and_firewall_rules(
    host: Host, tmp_path: Path
) -> None:
    """No cache entry, and the namespace still held by someone else (so its veth lives on):
    the sweep finds the veth on our bridge, the lease, and the firewall plugin's rules."""
    from portside.linux import libc

    host.run("iptables", "-P", "FORWARD", "DROP")
    host.net.store.create("fw", subnet="10.68.0.0/24")
    c = host.container("gone")
    host.net.setup("gone", c, [NetworkRequest("fw")])
    assert any(r.startswith("-A CNI-FORWARD -s 10.68.0.") for r in host.container_rules())
    other = tmp_path / "otherpin"
    other.touch()
    libc.mount(str(c), str(other), None, libc.MS_BIND)
    try:
        for f in (host.runroot / "cni" / "results").glob("*gone*"):
            f.unlink()
        report = cleanup(host.net, live_ids=set())
        assert report.netns == ["gone"]
        assert len(report.veths) == 1 and host.veths() == []
        assert len(report.leases) == 1 and host.leases() == []
        assert host.container_rules() == []
        assert report.names == ["fw/gone"] and report.errors == []
        assert dns.responder_pid(host.runroot / "dns", "fw") is None
    finally:
        libc.umount2(str(other), libc.MNT_DETACH)


def test_teardown_after_the_namespace_is_gone(host: Host) -> None:
    """Namespace removed first (or lost with a reboot of the run root): DEL still frees the
    lease and the rules, with CNI_NETNS left out as the spec allows."""
    c = host.container("early")
    host.net.setup("early", c, [NetworkRequest("portside")], ports=resolve([parse_publish("5:5")]))
    host.net.remove_netns(c)
    # the kernel takes the pair with the namespace, from a work queue: give it its time
    deadline = time.monotonic() + 20
    while host.veths() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host.veths() == []
    host.net.teardown("early")
    assert host.leases() == [] and host.container_rules() == []
    assert host.net.attachments("early") == []


def test_removing_a_network_takes_its_bridge_and_state(host: Host) -> None:
    host.net.store.create("temp", subnet="10.69.0.0/24")
    c = host.container("t")
    host.net.setup("t", c, [NetworkRequest("temp")], name="t")
    with pytest.raises(InUse, match="in use by container t"):
        host.net.remove_network("temp")
    host.net.teardown("t")
    assert "portside1" in host.run("ip", "-o", "link").stdout  # the plugins leave the bridge
    assert (host.net.ipam_dir / "temp").is_dir() and (host.runroot / "dns" / "temp").is_dir()
    host.net.remove_network("temp")
    assert "portside1" not in host.run("ip", "-o", "link").stdout
    assert not (host.net.ipam_dir / "temp").exists()
    assert not (host.runroot / "dns" / "temp").exists()
    with pytest.raises(NotFound):
        host.net.store.get("temp")

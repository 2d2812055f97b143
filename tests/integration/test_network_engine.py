"""`portside run --network ...` end to end: the engine makes the namespaces and runs the CNI
plugins, with portside-runtime and runc.

The host side of every test is a network namespace the test makes: portside.toml's
`host_netns` points the engine at it, so the bridges, veths, iptables rules and DNS
responders are made there, and `--network host` means it. Traffic stays in it and on
its loopback. At the end everything is removed and the real host is checked.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portside.network import dns, netns
from tests.conftest import need_root, need_tool
from tests.fixtures.links import links_here, new_links_here
from tests.integration.test_engine_support import IMAGE, Env, engine_template, env, runtime_arg

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.overlay, pytest.mark.timeout(240)]

BUSYBOX = "/bin/busybox"
RUNTIMES = ["portside-runtime", "runc"]


class NetEnv:
    """The engine (Env) plus the host namespace it uses."""

    def __init__(self, env: Env, host: Path) -> None:
        self.env = env
        self.host = host

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.env.cli(*args, check=check)

    def on_host(self, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return netns.run_in(self.host, list(argv), capture_output=True, text=True, check=check)

    def veths(self) -> list[str]:
        out = self.on_host("ip", "-o", "link", "show", "type", "veth").stdout
        return [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines()]

    def rules(self) -> list[str]:
        """Rules of one container: id comments, per-container chains, firewall addresses
        (not the shared CNI-HOSTPORT-* / CNI-FORWARD chains the plugins make once)."""
        per = re.compile(r'id: \\"|CNI-DN-|CNI-[0-9a-f]{20}|-A CNI-FORWARD -[ds] ')
        out = ""
        for table in ("filter", "nat"):
            out += self.on_host("iptables-save", "-t", table).stdout
        return [ln for ln in out.splitlines() if ln.startswith("-A ") and per.search(ln)]

    def leases(self) -> list[str]:
        d = self.env.runroot / "cni" / "networks"
        return [str(p) for p in d.rglob("*") if p.is_file() and re.match(r"^[0-9a-f.:]+$", p.name)]

    def pins(self) -> list[str]:
        return [p.name for p in netns.list_all(self.env.runroot)]

    def traces(self) -> tuple[list[str], ...]:
        return self.veths(), self.pins(), self.leases(), self.rules()

    def settled(self) -> None:
        """Wait until no container's network is left: `run --rm` returns while the monitor's
        exit command still takes its network down (a DEL the CLI does not wait for)."""
        self.env.wait_for("networks taken down", lambda: self.traces() == ([], [], [], []))


@pytest.fixture
def net(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NetEnv]:
    need_root()
    need_tool("iptables")
    need_tool("nsenter")
    monkeypatch.delenv("PORTSIDE_DEFAULT_NETWORK")  # this test has a host of its own
    links_before = links_here()
    hostrun = tmp_path / "hostns"
    host = netns.create(hostrun, "host")
    (tmp_path / "portside.toml").write_text(f'[engine]\nhost_netns = "{host}"\n')
    ne = NetEnv(env, host)
    try:
        yield ne
    finally:
        env.cleanup()
        dns_dir = env.runroot / "dns"
        for d in dns_dir.glob("*") if dns_dir.is_dir() else []:
            dns.stop_responder(dns_dir, d.name)
        for p in netns.list_all(env.runroot):
            netns.remove(p)
        netns.release_dir(env.runroot)
        netns.remove(host)
        netns.release_dir(hostrun)
    assert new_links_here(links_before) == set()
    assert env.mounts_under(tmp_path) == []


def _retry(ne: NetEnv, argv: list[str], want: str, host: bool = False) -> str:
    """Run until the output has `want` (httpd binding, a name registering); no timing."""
    out = ""
    for _ in range(100):
        r = ne.on_host(*argv) if host else ne.cli(*argv, check=False)
        out = r.stdout + r.stderr
        if want in out:
            return out
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_httpd_reached_by_name_alias_and_published_port(net: NetEnv, runtime: str) -> None:
    rt = ("--runtime", runtime_arg(runtime))
    net.cli("network", "create", "--subnet", "10.91.0.0/24", "appnet")
    serve = "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www"
    net.cli(
        "run", "-d", *rt, "--name", "web", "--network", "appnet", "--network-alias", "www",
        "-p", "127.0.0.1:18081:80", IMAGE, "sh", "-c", serve,
    )  # fmt: skip
    doc = net.env.inspect("web")
    ns = doc["NetworkSettings"]
    ip = ns["Networks"]["appnet"]["IPAddress"]
    assert ip.startswith("10.91.0.") and ns["IPAddress"] == ip
    assert ns["Gateway"] == "10.91.0.1" and re.fullmatch(r"[0-9a-f:]{17}", ns["MacAddress"])
    assert ns["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18081"}]}
    assert "www" in ns["Networks"]["appnet"]["Aliases"]
    assert doc["HostConfig"]["NetworkMode"] == "appnet"
    assert net.cli("port", "web").stdout == "80/tcp -> 127.0.0.1:18081\n"
    assert net.cli("port", "web", "80").stdout == "127.0.0.1:18081\n"
    # another container on the network: by name (its /etc/hosts) and alias (the responder)
    fetch = "wget -q -O - http://web/ && wget -q -O - http://www.dns.portside/"
    out = _retry(
        net, ["run", "--rm", *rt, "--network", "appnet", IMAGE, "sh", "-c", fetch], "hello-web"
    )
    assert out.count("hello-web") == 2, out
    look = net.cli("run", "--rm", *rt, "--network", "appnet", IMAGE, "nslookup", "www").stdout
    assert ip in look and "10.91.0.1" in look  # answered by the responder on the gateway
    # its files, filled once ADD returned (in place: the runtime had bind-mounted them)
    files = "ip -o -4 addr show eth0; cat /etc/hosts /etc/resolv.conf"
    out = net.cli(
        "run", "--rm", *rt, "--network", "appnet", "--name", "cli", IMAGE, "sh", "-c", files
    )
    own = re.search(r"inet (10\.91\.0\.\d+)/24", out.stdout)
    assert own, out.stdout
    assert re.search(rf"^{re.escape(own.group(1))}\s.*\bcli\b", out.stdout, re.M), out.stdout
    assert re.search(rf"^{re.escape(ip)}\s+web\b.*\bwww\b", out.stdout, re.M), out.stdout
    assert "nameserver 10.91.0.1" in out.stdout and "search dns.portside" in out.stdout
    # the host side, through the published port on its loopback
    url = "http://127.0.0.1:18081/"
    out = _retry(net, [BUSYBOX, "wget", "-q", "-O", "-", url], "hello-web", host=True)
    assert "hello-web" in out
    assert dns.responder_pid(net.env.runroot / "dns", "appnet") is not None
    net.cli("rm", "-f", "web")
    # the responder left with the network's last container; nothing else stayed
    assert dns.responder_pid(net.env.runroot / "dns", "appnet") is None
    net.settled()
    net.cli("network", "rm", "appnet")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_none_host_and_container_modes(net: NetEnv, runtime: str) -> None:
    rt = ("--runtime", runtime_arg(runtime))
    net.on_host("ip", "link", "add", "probe0", "type", "bridge", check=True)
    assert net.cli(
        "run", "--rm", *rt, "--network", "none", IMAGE, "ls", "/sys/class/net"
    ).stdout == ("lo\n")
    links = net.cli("run", "--rm", *rt, "--network", "host", IMAGE, "ip", "-o", "link").stdout
    assert "probe0" in links, links  # the host side's interfaces
    ns_arg = f"ns:{net.host}"  # a namespace made elsewhere, joined by path
    assert "probe0" in net.cli("run", "--rm", *rt, "--network", ns_arg, IMAGE, "ip", "link").stdout
    cid = net.cli("run", "-d", *rt, "--name", "base", IMAGE, "sleep", "60").stdout.strip()
    base_ip = net.env.inspect("base")["NetworkSettings"]["IPAddress"]
    assert base_ip.startswith("10.88.")  # the default network
    assert net.env.inspect("base")["HostConfig"]["NetworkMode"] == "bridge"
    shared = net.cli(
        "run", "--rm", *rt, "--network", f"container:{cid[:12]}", IMAGE, "ip", "-o", "-4", "addr"
    ).stdout
    assert f"inet {base_ip}/16" in shared
    net.cli("rm", "-f", "base")
    net.settled()


def test_connect_disconnect_restart_and_prune(net: NetEnv) -> None:
    net.cli("network", "create", "--subnet", "10.92.0.0/24", "side")
    net.cli("run", "-d", "--name", "box", IMAGE, "sleep", "60")
    net.cli("network", "connect", "--alias", "boxy", "side", "box")
    side_ip = net.env.inspect("box")["NetworkSettings"]["Networks"]["side"]["IPAddress"]
    assert side_ip.startswith("10.92.0.")
    addrs = net.cli("exec", "box", "ip", "-o", "-4", "addr").stdout
    assert f"inet {side_ip}/24" in addrs and "eth1" in addrs
    net.cli("network", "disconnect", "side", "box")
    assert "10.92.0." not in net.cli("exec", "box", "ip", "-o", "-4", "addr").stdout
    # stop takes the network down (exit command); start brings it up again
    net.cli("stop", "-t", "0", "box")
    assert net.traces() == ([], [], [], [])  # down when stop returns
    net.cli("start", "box")
    assert net.env.inspect("box")["NetworkSettings"]["IPAddress"].startswith("10.88.")
    assert len(net.veths()) == 1
    # a crash: the record is gone, its namespace, veth, lease and rules stay; prune sweeps
    engine = net.env.engine()
    try:
        engine.db.delete(engine.resolve("box"))
    finally:
        engine.close()
    assert net.pins() and net.veths()
    net.cli("ps", "-a")  # the engine's start-up check finds and sweeps what it left
    assert net.traces() == ([], [], [], [])
    # a network a container names cannot be removed; prune removes the unused ones
    net.cli("create", "--network", "side", "--name", "later", IMAGE, "true")
    r = net.cli("network", "rm", "side", check=False)
    assert r.returncode != 0 and "used by container later" in r.stderr
    out = net.cli("system", "prune", "-f").stdout  # the stopped container, then its network
    assert "Deleted container" in out and "Deleted network side" in out
    assert net.cli("network", "ls", "-q").stdout == "portside\n"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("runtime", "cycles"), [("portside-runtime", 100), ("runc", 24)])
def test_run_rm_cycles_leave_nothing(net: NetEnv, runtime: str, cycles: int) -> None:
    """100 cycles on the default runtime (24 with runc keep the suite's time in bounds),
    in 4 streams at once: addresses, pins and rules of concurrent containers must not mix."""
    rt = ("--runtime", runtime_arg(runtime))

    def stream(n: int) -> list[int]:
        return [
            net.cli("run", "--rm", *rt, IMAGE, "true", check=False).returncode for _ in range(n)
        ]

    with ThreadPoolExecutor(4) as pool:
        codes = [c for cs in pool.map(stream, [cycles // 4] * 4) for c in cs]
    assert codes == [0] * cycles
    net.settled()  # every exit command's DEL done: no veth, pin, lease or rule is left
    assert net.cli("ps", "-aq").stdout == ""
    assert list((net.env.runroot / "cni" / "results").glob("*")) == []
    assert list((net.env.runroot / "netdown").glob("*")) == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_broken_conflist_and_missing_plugin_are_one_line_and_leave_nothing(
    net: NetEnv, runtime: str
) -> None:
    rt = ("--runtime", runtime_arg(runtime))
    nets = net.env.root / "networks"
    nets.mkdir(exist_ok=True)
    (nets / "broken.conflist").write_text('{"cniVersion": "1.0.0", "name": "broken", "plugins": [')
    r = net.cli("run", "--rm", *rt, "--network", "broken", IMAGE, "true", check=False)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "broken.conflist" in r.stderr
    conf = {"cniVersion": "1.0.0", "name": "noplug", "plugins": [{"type": "nosuchplugin"}]}
    (nets / "noplug.conflist").write_text(json.dumps(conf))
    r = net.cli("run", "--rm", *rt, "--network", "noplug", IMAGE, "true", check=False)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "nosuchplugin" in r.stderr
    assert net.cli("ps", "-aq").stdout == ""
    assert net.traces() == ([], [], [], [])
    assert list((net.env.runroot / "cni" / "results").glob("*")) == []


def test_two_networks_static_ip_mac_and_publish_all(net: NetEnv) -> None:
    net.cli("network", "create", "--subnet", "10.93.0.0/24", "front")
    net.cli("network", "create", "--subnet", "10.94.0.0/24", "back")
    mac = "02:42:0a:5d:00:32"
    out = net.cli(
        "run", "--rm", "--network", "front,back", "--ip", "10.93.0.50", "--mac-address", mac,
        IMAGE, "sh", "-c", "ip -o -4 addr; cat /sys/class/net/eth0/address",
    ).stdout  # fmt: skip
    assert re.search(r"eth0\s+inet 10\.93\.0\.50/24", out), out
    assert re.search(r"eth1\s+inet 10\.94\.0\.\d+/24", out), out
    assert mac in out
    # -P: the image's EXPOSE on a free host port
    net.cli("create", "--network", "none", "--name", "src", IMAGE, "true")
    net.cli("commit", "--change", "EXPOSE 80/tcp", "src", "localhost/exposed:latest")
    serve = "mkdir -p /www && echo hello-P > /www/index.html && exec httpd -f -p 80 -h /www"
    net.cli("run", "-d", "-P", "--name", "pw", "localhost/exposed:latest", "sh", "-c", serve)
    line = net.cli("port", "pw").stdout
    m = re.fullmatch(r"80/tcp -> 0\.0\.0\.0:(\d+)\n", line)
    assert m, line
    url = f"http://127.0.0.1:{m.group(1)}/"
    assert "hello-P" in _retry(net, [BUSYBOX, "wget", "-q", "-O", "-", url], "hello-P", host=True)
    net.cli("rm", "-f", "pw", "src")
    net.settled()


def test_exit_command_takes_down_only_the_network_it_was_given(net: NetEnv) -> None:
    """The monitor's exit command names the start it belongs to (a token): after a restart
    it must leave the new network alone; with the current token it takes it down."""
    from portside.engine.networking import main

    net.cli("run", "-d", "--name", "box", IMAGE, "sleep", "60")
    engine = net.env.engine()
    try:
        doc = engine.record("box")
        argv = engine.network.down_command(doc, "a-token-of-an-earlier-start")
    finally:
        engine.close()
    args = argv[argv.index("down") :]
    assert main(args) == 0
    assert len(net.veths()) == 1 and net.pins() == [doc["id"]]
    args[args.index("--token") + 1] = doc["net_status"]["token"]
    assert main(args) == 0
    assert net.veths() == [] and net.pins() == [] and net.leases() == []
    assert net.env.inspect("box")["NetworkSettings"]["IPAddress"] == ""
    net.cli("rm", "-f", "box")
    net.settled()

"""What the engine calls: set up and tear down a container's networks.

    net = Networking(root, runroot)
    path = net.create_netns(container_id)
    res = net.setup(container_id, path, [NetworkRequest("portside")], ports=[...], name="web")
    ... write res.hosts(...), res.resolv() into the container, start it ...
    net.teardown(container_id)            # from the cache: works after a crash too
    net.remove_netns(path)

`--network none` is a namespace with only lo (create_netns, no setup); `host` and
`container:ID` need no namespace of ours at all (the runtime spec says which to join).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside.errors import AlreadyExists, InvalidArgument, NetworkError, NotFound
from portside.network import dns, netns
from portside.network.cni import result as cache
from portside.network.cni.config import DEFAULT_PLUGIN_DIRS, NetworkConfig, NetworkStore
from portside.network.cni.invoke import Attachment, CniOptions, Invoker
from portside.network.mode import NetworkMode, parse_network_mode
from portside.network.ports import PortMapping

__all__ = ["NetworkMode", "parse_network_mode"]  # re-exported: the engine's surface


@dataclass
class NetworkRequest:
    """One network a container joins (`--network NAME`, `--ip`, `--mac-address`,
    `--network-alias`)."""

    name: str
    ip: str | None = None
    mac: str | None = None
    aliases: list[str] = field(default_factory=list)
    ifname: str = ""  # eth0, eth1, ... by position when empty


@dataclass
class NetworkStatus:
    network: str
    ifname: str
    ips: list[str]  # CIDR
    mac: str
    gateway: str
    result: dict[str, Any]

    @property
    def addresses(self) -> list[str]:
        return [i.split("/", 1)[0] for i in self.ips]


@dataclass
class SetupResult:
    container_id: str
    netns: str
    networks: list[NetworkStatus]
    ports: list[PortMapping]
    dns_servers: list[str]  # responders (gateways) of the networks that resolve names
    peers: list[tuple[str, list[str]]]  # (ip, names) of the others on our networks

    def hosts(self, hostname: str, names: Iterable[str] = (), extra: Iterable[Any] = ()) -> str:
        own = [a for n in self.networks for a in n.addresses]
        return dns.hosts_content(hostname, own, names, self.peers, extra)

    def resolv(self, host_resolv: str | None = None, dns_servers: Iterable[str] = ()) -> str:
        return dns.resolv_content(host_resolv, dns=dns_servers, network_dns=self.dns_servers)


def _status(network: str, ifname: str, res: dict[str, Any]) -> NetworkStatus:
    ifaces = res.get("interfaces") or []
    mac = ""
    ips: list[str] = []
    gw = ""
    for i, iface in enumerate(ifaces):
        if iface.get("name") == ifname and iface.get("sandbox"):
            mac = str(iface.get("mac", ""))
            for ip in res.get("ips") or []:
                if ip.get("interface") in (i, None):
                    ips.append(str(ip["address"]))
                    gw = gw or str(ip.get("gateway", ""))
    if not ips:  # plugins that do not report interfaces
        ips = [str(ip["address"]) for ip in res.get("ips") or [] if "address" in ip]
        gw = next((str(ip["gateway"]) for ip in res.get("ips") or [] if ip.get("gateway")), "")
    return NetworkStatus(network, ifname, ips, mac, gw, res)


class Networking:
    """The engine's handle on networking: configs, namespaces, CNI, names."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        runroot: str | os.PathLike[str],
        plugin_dirs: Sequence[str] = DEFAULT_PLUGIN_DIRS,
        config_dirs: Sequence[str] = (),
        host_netns: str | None = None,
        ipam_dir: str | os.PathLike[str] | None = None,
        dns_upstreams: Sequence[str] | None = None,
        firewall: bool | None = None,
    ) -> None:
        self.root = Path(root)
        self.runroot = Path(runroot)
        self.host_netns = host_netns
        self.store = NetworkStore(
            self.root / "networks",
            tuple(config_dirs),
            firewall=firewall if firewall is not None else self.forward_needs_firewall,
        )
        self.cni = Invoker(
            CniOptions(
                cache_dir=self.runroot / "cni",
                plugin_dirs=tuple(plugin_dirs),
                ipam_dir=Path(ipam_dir) if ipam_dir else self.runroot / "cni" / "networks",
                host_netns=host_netns,
            )
        )
        self.dns_dir = self.runroot / "dns"
        # where responders send names they do not know (default: the host's resolv.conf)
        self.dns_upstreams = list(dns_upstreams) if dns_upstreams is not None else None

    def forward_needs_firewall(self) -> bool:
        """True unless the host side's FORWARD policy accepts and it has no rules (asked
        once, when a network config is written; unknown counts as needed)."""
        p = netns.run_in(
            self.host_netns, ["iptables", "-S", "FORWARD"], capture_output=True, text=True
        )
        if p.returncode != 0:
            return True
        rules = [ln for ln in p.stdout.splitlines() if ln.strip()]
        return rules != ["-P FORWARD ACCEPT"]

    @property
    def ipam_dir(self) -> Path:
        return self.cni.options.effective_ipam_dir

    # -- namespaces ---------------------------------------------------------------------

    def create_netns(self, container_id: str) -> Path:
        return netns.create(self.runroot, container_id)

    def remove_netns(self, path: str | os.PathLike[str]) -> None:
        netns.remove(path)

    # -- set up / tear down -------------------------------------------------------------

    def setup(
        self,
        container_id: str,
        netns_path: str | os.PathLike[str],
        requests: Sequence[NetworkRequest],
        ports: Sequence[PortMapping] = (),
        name: str = "",
    ) -> SetupResult:
        """ADD on every requested network (ports published on the first); on any failure
        the networks already added are removed again and the error raised as one line."""
        if not requests:
            raise InvalidArgument("no network to set up (use --network none for none)")
        seen = set()
        for r in requests:
            if r.name in seen:
                raise InvalidArgument(f"network {r.name} given twice")
            seen.add(r.name)
        confs = [self.store.get(r.name) for r in requests]
        for r in requests:
            if r.ip:
                try:
                    ipaddress.ip_address(r.ip)
                except ValueError:
                    raise InvalidArgument(f"invalid --ip {r.ip!r}") from None
        path = os.fspath(netns_path)
        current = self.attachments(container_id)
        for i, (req, conf) in enumerate(zip(requests, confs, strict=True)):
            short = container_id[:12]
            if any(e.network == conf.name for e in current):
                raise AlreadyExists(f"container {short} is already on network {conf.name}")
            ifname = req.ifname or f"eth{i}"
            if any(e.ifname == ifname for e in current):
                raise AlreadyExists(f"container {short} already has an interface {ifname}")
        done: list[tuple[NetworkConfig, Attachment]] = []
        statuses: list[NetworkStatus] = []
        try:
            for i, (req, conf) in enumerate(zip(requests, confs, strict=True)):
                rc: dict[str, Any] = {}
                if i == 0 and ports:
                    rc["portMappings"] = [p.to_cni() for p in ports]
                if req.ip:
                    rc["ips"] = [req.ip]
                if req.mac:
                    rc["mac"] = req.mac
                ifname = req.ifname or f"eth{i}"
                att = Attachment(container_id, path, ifname, {}, rc)
                res = self.cni.add(conf, att)
                done.append((conf, att))
                statuses.append(_status(conf.name, ifname, res))
            dns_servers: list[str] = []
            for req, conf, st in zip(requests, confs, statuses, strict=True):
                if not conf.dns_enabled:
                    continue  # as podman and docker: no names on the default network
                names = [n for n in (name, container_id[:12], *req.aliases) if n]
                dns.register(self.dns_dir, conf.name, container_id, names, st.ips)
                if st.gateway:
                    dns.start_responder(
                        self.dns_dir,
                        conf.name,
                        st.gateway,
                        host_netns=self.host_netns,
                        upstreams=self.dns_upstreams,
                    )
                    dns_servers.append(st.gateway)
        except BaseException:
            for conf, att in reversed(done):
                with contextlib.suppress(NetworkError):
                    self.cni.delete(conf, att)
            for conf in confs:
                if conf.dns_enabled:
                    with contextlib.suppress(OSError):
                        self._unregister(conf.name, container_id)
            raise
        peers: list[tuple[str, list[str]]] = []
        for conf in confs:
            if not conf.dns_enabled:
                continue
            for cid, reg in dns.read_registry(self.dns_dir, conf.name).entries.items():
                if cid != container_id:
                    peers += [(ip, reg.names) for ip in reg.ips]
        return SetupResult(container_id, path, statuses, list(ports), dns_servers, peers)

    def _unregister(self, network: str, container_id: str) -> None:
        if dns.unregister(self.dns_dir, network, container_id):
            dns.stop_responder(self.dns_dir, network)

    def attachments(self, container_id: str) -> list[cache.CacheEntry]:
        return cache.entries(self.cni.options.cache_dir, container_id)

    def teardown(self, container_id: str, netns_path: str | os.PathLike[str] | None = None) -> None:
        """DEL every network the container was added to, from the result cache (so it needs
        neither the config nor a live process); idempotent; raises the first failure after
        trying them all."""
        first: NetworkError | None = None
        orphaned = False
        for entry in reversed(self.attachments(container_id)):
            att = Attachment(
                container_id, os.fspath(netns_path) if netns_path else entry.netns, entry.ifname
            )
            orphaned = orphaned or not att.netns or not netns.is_pinned(att.netns)
            try:
                self.cni.delete(None, att, network=entry.network)
            except NetworkError as err:
                first = first or err
            if (self.dns_dir / entry.network).is_dir():
                with contextlib.suppress(OSError):
                    self._unregister(entry.network, container_id)
        if orphaned:
            # without the namespace the bridge plugin cannot tell which masquerade rules
            # were this container's, and leaves them: they carry its id, so find them
            from portside.network import rules

            rules.sweep(self.host_netns, lambda cid: cid == container_id)
        if first is not None:
            raise first

    def connect(
        self,
        container_id: str,
        netns_path: str | os.PathLike[str],
        request: NetworkRequest,
        name: str = "",
    ) -> NetworkStatus:
        """`network connect`: one more network on a running container, on the first free
        ethN (ports stay with the network the container started on)."""
        current = self.attachments(container_id)
        if any(e.network == request.name for e in current):
            raise AlreadyExists(
                f"container {container_id[:12]} is already on network {request.name}"
            )
        used = {e.ifname for e in current}
        n = 0
        while f"eth{n}" in used:
            n += 1
        req = NetworkRequest(
            request.name, request.ip, request.mac, request.aliases, request.ifname or f"eth{n}"
        )
        return self.setup(container_id, netns_path, [req], name=name).networks[0]

    def disconnect(self, container_id: str, network: str) -> None:
        """`network disconnect`: DEL one network, from the cache."""
        entries = [e for e in self.attachments(container_id) if e.network == network]
        if not entries:
            raise NotFound(f"container {container_id[:12]} is not on network {network}")
        for e in entries:
            self.cni.delete(None, Attachment(container_id, e.netns, e.ifname), network=network)
        if (self.dns_dir / network).is_dir():
            self._unregister(network, container_id)

    def remove_network(self, name: str) -> None:
        """`network rm`: the conflist, then what the network left on the host side once its
        last container went: the bridge (the plugins never delete it), the IPAM state dir
        and the name registry."""
        from portside.errors import InUse

        used = self.in_use(name)
        if used:
            raise InUse(f"network {name} is in use by container {used[0][:12]}")
        conf = self.store.get(name)
        self.store.remove(name)
        if conf.bridge and self._bridge_is_ours(conf) and not self._bridge_ports(conf.bridge):
            netns.run_in(self.host_netns, ["ip", "link", "del", conf.bridge], capture_output=True)
        import shutil

        shutil.rmtree(self.ipam_dir / name, ignore_errors=True)
        dns.stop_responder(self.dns_dir, name)
        shutil.rmtree(self.dns_dir / name, ignore_errors=True)

    def _bridge_is_ours(self, conf: NetworkConfig) -> bool:
        """The bridge carries this network's gateway: another root's network of the same
        bridge name (or anyone else's bridge) is left alone."""
        gw = conf.gateway()
        p = netns.run_in(
            self.host_netns,
            ["ip", "-o", "addr", "show", "dev", str(conf.bridge)],
            capture_output=True,
            text=True,
        )
        return bool(gw) and p.returncode == 0 and f" {gw}/" in p.stdout

    def _bridge_ports(self, bridge: str) -> list[str]:
        p = netns.run_in(
            self.host_netns,
            ["ip", "-o", "link", "show", "master", bridge],
            capture_output=True,
            text=True,
        )
        return [ln.split(":")[1].strip() for ln in p.stdout.splitlines() if ":" in ln]

    def status(self, container_id: str) -> list[NetworkStatus]:
        """The container's attachments as ADD reported them (for inspect)."""
        return [_status(e.network, e.ifname, e.result) for e in self.attachments(container_id)]

    def ports(self, container_id: str) -> list[PortMapping]:
        """Its published ports (for `portside port`), from the cached runtimeConfig."""
        from portside.network.ports import from_runtime_config

        out: list[PortMapping] = []
        for e in self.attachments(container_id):
            out += from_runtime_config(e.runtime_config.get("portMappings") or [])
        return out

    def check(self, container_id: str) -> list[str]:
        """CHECK every attachment; the networks actually checked (raises on a bad one)."""
        checked = []
        for entry in self.attachments(container_id):
            att = Attachment(container_id, entry.netns, entry.ifname)
            if self.cni.check(None, att, network=entry.network):
                checked.append(entry.network)
        return checked

    def in_use(self, network: str) -> list[str]:
        """Container ids attached to `network` (by the result cache)."""
        entries = cache.entries(self.cni.options.cache_dir)
        return sorted({e.container_id for e in entries if e.network == network})


def setup_network(
    root: str | os.PathLike[str],
    runroot: str | os.PathLike[str],
    container_id: str,
    netns_path: str | os.PathLike[str],
    networks: Sequence[NetworkRequest],
    ports: Sequence[PortMapping] = (),
    name: str = "",
) -> SetupResult:
    """One-shot form of Networking(root, runroot).setup(...)."""
    return Networking(root, runroot).setup(container_id, netns_path, networks, ports, name)


def teardown_network(
    root: str | os.PathLike[str], runroot: str | os.PathLike[str], container_id: str
) -> None:
    """One-shot form of Networking(root, runroot).teardown(...)."""
    Networking(root, runroot).teardown(container_id)

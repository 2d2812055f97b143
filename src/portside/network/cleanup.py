"""Finding and removing what dead containers left: the start-up and `system prune` sweep.

In order: DEL from the result cache for every attachment of a container that is
not live (that removes veths, rules and leases the normal way), then whatever a
worse crash left with no cache entry: pinned namespaces, host-local leases,
iptables rules carrying a dead container's id (portmap, bridge ipMasq) or a
freed address (firewall), veths on our bridges no live attachment owns, and
names in the DNS registries.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from portside.errors import NetworkError
from portside.network import dns, netns, rules
from portside.network.api import Networking
from portside.network.cni import result as cache
from portside.network.cni.invoke import Attachment

_LEASE_NAME = re.compile(r"^[0-9a-fA-F.:]+$")


@dataclass
class CleanupReport:
    attachments: list[str] = field(default_factory=list)  # network/container/ifname DEL'd
    netns: list[str] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    veths: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.attachments or self.netns or self.leases or self.rules or self.veths)


def _lease_owner(path: Path) -> str:
    try:
        return path.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return ""


def _leases(ipam_dir: Path) -> list[tuple[Path, str]]:
    out = []
    with contextlib.suppress(FileNotFoundError):
        for net_dir in ipam_dir.iterdir():
            if net_dir.is_dir():
                for f in net_dir.iterdir():
                    if _LEASE_NAME.match(f.name) and f.is_file():
                        out.append((f, _lease_owner(f)))
    return out


def _our_subnets(net: Networking) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for conf in net.store.list():
        for s in conf.subnets():
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.ip_network(s["subnet"], strict=False))
    return nets


def sweep_iptables(
    net: Networking, live_ids: set[str], live_ips: set[str], report: CleanupReport
) -> None:
    """Rules naming a dead container, and firewall rules for addresses nobody leases."""
    removed, errors = rules.sweep(
        net.host_netns, lambda cid: cid not in live_ids, _our_subnets(net), live_ips
    )
    report.rules += removed
    report.errors += errors


def _bridge_veths(net: Networking, bridges: Iterable[str]) -> list[str]:
    out = []
    for b in bridges:
        p = netns.run_in(
            net.host_netns,
            ["ip", "-o", "link", "show", "master", b, "type", "veth"],
            capture_output=True,
            text=True,
        )
        for line in p.stdout.splitlines():
            out.append(line.split(":")[1].strip().split("@")[0])
    return out


def cleanup(net: Networking, live_ids: Iterable[str]) -> CleanupReport:
    """Remove every trace of the containers not in `live_ids`; returns what was removed.
    Errors do not stop the sweep: they are listed in the report."""
    live = set(live_ids)
    report = CleanupReport()
    cache_dir = Path(net.cni.options.cache_dir)
    # 1. the normal way: DEL from the cache
    for entry in cache.entries(cache_dir):
        if entry.container_id in live:
            continue
        att = Attachment(entry.container_id, entry.netns, entry.ifname)
        try:
            net.cni.delete(None, att, network=entry.network)
            report.attachments.append(f"{entry.network}/{entry.container_id}/{entry.ifname}")
        except NetworkError as err:
            report.errors.append(str(err))
            cache.remove(cache_dir, entry.network, entry.container_id, entry.ifname)
    # 2. namespaces (their veths go with them)
    for p in netns.list_all(net.runroot):
        if p.name not in live:
            try:
                netns.remove(p)
                report.netns.append(p.name)
            except NetworkError as err:
                report.errors.append(str(err))
    # 3. leases
    live_ips = set()
    for f, owner in _leases(net.ipam_dir):
        if owner in live:
            live_ips.add(f.name)
            continue
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
            report.leases.append(f"{f.parent.name}/{f.name} ({owner or '?'})")
    # 4. iptables rules
    sweep_iptables(net, live, live_ips, report)
    # 5. veths on our bridges that no live attachment owns
    owned = set()
    for entry in cache.entries(cache_dir):
        for iface in entry.result.get("interfaces") or []:
            if not iface.get("sandbox"):
                owned.add(str(iface.get("name")))
    bridges = {c.bridge for c in net.store.list() if c.bridge}
    for v in _bridge_veths(net, sorted(b for b in bridges if b)):
        if v not in owned:
            r = netns.run_in(net.host_netns, ["ip", "link", "del", v], capture_output=True)
            if r.returncode == 0:
                report.veths.append(v)
    # 6. names
    with contextlib.suppress(FileNotFoundError):
        for d in sorted(net.dns_dir.iterdir()):
            reg = dns.read_registry(net.dns_dir, d.name)
            for cid in list(reg.entries):
                if cid not in live:
                    report.names.append(f"{d.name}/{cid}")
                    if dns.unregister(net.dns_dir, d.name, cid):
                        dns.stop_responder(net.dns_dir, d.name)
            if not reg.entries:
                dns.stop_responder(net.dns_dir, d.name)
    return report

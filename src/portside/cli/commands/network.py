"""`portside network create|ls|inspect|rm|prune|connect|disconnect`.

Networks are conflists; joining containers to them is the engine's (`run --network`,
`connect`, `disconnect`: portside.engine.networking over portside.network.api).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from portside.network.api import Networking
    from portside.network.cni.config import NetworkConfig


def _networking() -> Networking:
    """The engine's Networking: its roots and its settings (host side, plugin dirs)."""
    from portside.cli.commands.create import get_engine

    return get_engine().network.networking()


def network_id(name: str) -> str:
    """A stable ID from the name (a conflist has none of its own), as podman derives one."""
    return hashlib.sha256(name.encode()).hexdigest()


def _describe(conf: NetworkConfig, containers: list[str]) -> dict[str, Any]:
    return {
        "name": conf.name,
        "id": network_id(conf.name),
        "driver": "bridge" if conf.bridge else conf.plugins[0]["type"],
        "network_interface": conf.bridge or "",
        "subnets": conf.subnets(),
        "internal": conf.internal,
        "dns_enabled": conf.dns_enabled,
        "labels": conf.labels,
        "ipam_options": {"driver": "host-local"},
        "plugins": [p["type"] for p in conf.plugins],
        "config_file": str(conf.path) if conf.path else "",
        "containers": containers,
    }


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    from portside.errors import InvalidArgument

    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"invalid --label {v!r}: expected KEY=VALUE")
        out[k] = val if sep else ""
    return out


@click.group()
def network() -> None:
    """Manage networks."""


@network.command("create")
@click.option("--subnet", default=None, help="Subnet in CIDR form (default: a free 10.89.N.0/24).")
@click.option("--gateway", default=None, help="Gateway address (default: the first host).")
@click.option("--ip-range", default=None, help="Allocate container addresses from this range.")
@click.option("--internal", is_flag=True, help="No outbound access (no masquerade, no route).")
@click.option("--disable-dns", is_flag=True, help="No name resolution between containers.")
@click.option("--label", multiple=True, help="KEY=VALUE metadata (repeatable).")
@click.option("--driver", "-d", default="bridge", help="Only 'bridge'.")
@click.argument("name")
def create(
    subnet: str | None,
    gateway: str | None,
    ip_range: str | None,
    internal: bool,
    disable_dns: bool,
    label: tuple[str, ...],
    driver: str,
    name: str,
) -> None:
    """Create a bridge network; prints its name."""
    from portside.errors import InvalidArgument

    if driver != "bridge":
        raise InvalidArgument(f"unsupported network driver {driver!r} (only bridge)")
    net = _networking()
    conf = net.store.create(
        name, subnet, gateway, internal, _labels(label), dns=not disable_dns, ip_range=ip_range
    )
    click.echo(conf.name)


@network.command("ls")
@click.option("--quiet", "-q", is_flag=True, help="Only names.")
@click.option("--format", "fmt", default=None, help="'json' or 'table'.")
@click.option("--filter", "-f", "filters", multiple=True, help="name=X, label=K[=V], driver=X.")
def ls(quiet: bool, fmt: str | None, filters: tuple[str, ...]) -> None:
    """List networks."""
    net = _networking()
    confs = net.store.list()
    for f in filters:
        key, _, value = f.partition("=")
        if key == "name":
            confs = [c for c in confs if value in c.name]
        elif key == "label":
            k, sep, v = value.partition("=")
            confs = [c for c in confs if k in c.labels and (not sep or c.labels[k] == v)]
        elif key == "driver":
            confs = [c for c in confs if (c.bridge and value == "bridge")]
        else:
            from portside.errors import InvalidArgument

            raise InvalidArgument(f"invalid filter {f!r} (name, label, driver)")
    if quiet:
        for c in confs:
            click.echo(c.name)
        return
    if fmt == "json":
        click.echo(json.dumps([_describe(c, net.in_use(c.name)) for c in confs], indent=2))
        return
    rows = [("NETWORK ID", "NAME", "DRIVER", "SUBNET")]
    for c in confs:
        subnet = ",".join(s["subnet"] for s in c.subnets())
        rows.append((network_id(c.name)[:12], c.name, "bridge" if c.bridge else "-", subnet))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])


@network.command("inspect")
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...]) -> None:
    """Show networks as JSON."""
    net = _networking()
    click.echo(json.dumps([_describe(net.store.get(n), net.in_use(n)) for n in names], indent=2))


@network.command("rm")
@click.argument("names", nargs=-1, required=True)
def rm(names: tuple[str, ...]) -> None:
    """Remove networks no container uses."""
    from portside.errors import InvalidArgument
    from portside.network.cni.config import DEFAULT_NETWORK

    net = _networking()
    for n in names:
        if n == DEFAULT_NETWORK:
            raise InvalidArgument(f"network {n} is the default network and cannot be removed")
        users = _configured_users(n)
        if users:
            from portside.errors import InUse

            raise InUse(f"network {n} is used by container {users[0]} (remove it first)")
        net.remove_network(n)
        click.echo(n)


@network.command("connect")
@click.option("--ip", default=None, help="Address on this network.")
@click.option("--mac-address", default=None, help="MAC address on this network.")
@click.option("--alias", multiple=True, help="Another name on this network (repeatable).")
@click.argument("name")
@click.argument("container")
def connect(
    ip: str | None, mac_address: str | None, alias: tuple[str, ...], name: str, container: str
) -> None:
    """Connect a container to a network (now if it runs, and at every later start)."""
    from portside.cli.commands.create import get_engine
    from portside.engine.networking import connect_container

    connect_container(get_engine(), container, name, ip, mac_address, list(alias))


@network.command("disconnect")
@click.option("--force", "-f", is_flag=True, help="Accepted for compatibility.")
@click.argument("name")
@click.argument("container")
def disconnect(force: bool, name: str, container: str) -> None:
    """Disconnect a container from a network."""
    from portside.cli.commands.create import get_engine
    from portside.engine.networking import disconnect_container

    disconnect_container(get_engine(), container, name)


def _configured_users(name: str) -> list[str]:
    """Containers (running or not) that join `name` when they start (podman refuses to
    remove a network those still name)."""
    from portside.cli.commands.create import get_engine

    return [
        d["name"]
        for d in get_engine().db.all()
        if any(r.get("name") == name for r in (d.get("net") or {}).get("requests") or [])
    ]


@network.command("prune")
@click.option("--force", "-f", is_flag=True, help="Do not ask (accepted for compatibility).")
def prune(force: bool) -> None:
    """Remove every network of ours that no container uses (not the default)."""
    from portside.network.cni.config import DEFAULT_NETWORK

    net = _networking()
    for c in net.store.list():
        if c.name == DEFAULT_NETWORK or net.in_use(c.name) or _configured_users(c.name):
            continue
        if c.path is None or c.path.parent != net.store.directory:
            continue
        net.remove_network(c.name)
        click.echo(c.name)

"""Network configs: CNI conflists on disk, validated, and the networks portside makes.

A portside network IS a conflist (ROOT/networks/NAME.conflist), so any CNI tool
can read it, and conflists dropped into an /etc/cni/net.d-style directory are
networks too. Our own metadata (labels, internal, dns) sits under a top-level
`portside` key, which libcni and the plugins ignore.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside.errors import AlreadyExists, ConfigError, InUse, InvalidArgument, NotFound

DEFAULT_NETWORK = "portside"
DEFAULT_BRIDGE = "portside0"
DEFAULT_SUBNET = "10.88.0.0/16"
DEFAULT_CNI_VERSION = "1.0.0"
# Debian's containernetworking-plugins first, then the upstream default.
DEFAULT_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")

_NET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass
class NetworkConfig:
    """One validated conflist."""

    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    raw: dict[str, Any]
    path: Path | None = None
    cni_versions: list[str] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        m = self.raw.get("portside")
        return m if isinstance(m, dict) else {}

    @property
    def labels(self) -> dict[str, str]:
        labels = self.meta.get("labels")
        return dict(labels) if isinstance(labels, dict) else {}

    @property
    def internal(self) -> bool:
        return bool(self.meta.get("internal", False))

    @property
    def dns_enabled(self) -> bool:
        return bool(self.meta.get("dnsEnabled", False))

    @property
    def disable_check(self) -> bool:
        return bool(self.raw.get("disableCheck", False))

    @property
    def bridge(self) -> str | None:
        for p in self.plugins:
            if p.get("type") == "bridge":
                b = p.get("bridge", "cni0")
                return str(b)
        return None

    def subnets(self) -> list[dict[str, str]]:
        """[{"subnet": CIDR, "gateway": IP}] of the host-local ranges (first plugin's IPAM)."""
        out: list[dict[str, str]] = []
        for p in self.plugins:
            ipam = p.get("ipam")
            if not isinstance(ipam, dict):
                continue
            ranges = ipam.get("ranges") or []
            if not ranges and ipam.get("subnet"):
                ranges = [[{"subnet": ipam["subnet"], "gateway": ipam.get("gateway")}]]
            for rs in ranges:
                for r in rs if isinstance(rs, list) else []:
                    if isinstance(r, dict) and r.get("subnet"):
                        gw = r.get("gateway") or _first_host(r["subnet"])
                        out.append({"subnet": str(r["subnet"]), "gateway": str(gw)})
            if out:
                break
        return out

    def gateway(self) -> str | None:
        s = self.subnets()
        return s[0]["gateway"] if s else None

    def to_json(self) -> str:
        return json.dumps(self.raw, indent=2) + "\n"


def _first_host(subnet: str) -> str:
    net = ipaddress.ip_network(subnet, strict=False)
    return str(net.network_address + 1)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NET_NAME.match(name) or len(name) > 200:
        raise InvalidArgument(
            f"invalid network name {name!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return name


def parse_conflist(text: str | bytes, origin: str) -> NetworkConfig:
    """Validate a conflist (or a single-plugin .conf, wrapped as one) into a NetworkConfig;
    anything wrong raises ConfigError naming `origin` and the field."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{origin}: not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{origin}: not a JSON object")
    if "plugins" not in doc and "type" in doc:  # a .conf: one plugin
        plugin = {k: v for k, v in doc.items() if k not in ("name", "cniVersion")}
        doc = {"cniVersion": doc.get("cniVersion"), "name": doc.get("name"), "plugins": [plugin]}
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{origin}: missing network 'name'")
    if not _NET_NAME.match(name):
        raise ConfigError(f"{origin}: invalid network name {name!r}")
    version = doc.get("cniVersion")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ConfigError(f"{origin}: network {name}: 'cniVersion' must be a version like 1.0.0")
    versions = doc.get("cniVersions", [])
    if not isinstance(versions, list) or not all(
        isinstance(v, str) and _VERSION.match(v) for v in versions
    ):
        raise ConfigError(f"{origin}: network {name}: 'cniVersions' must be a list of versions")
    plugins = doc.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise ConfigError(f"{origin}: network {name}: 'plugins' must be a non-empty list")
    for i, p in enumerate(plugins):
        if not isinstance(p, dict):
            raise ConfigError(f"{origin}: network {name}: plugin #{i + 1} is not an object")
        t = p.get("type")
        if not isinstance(t, str) or not t or "/" in t or t.startswith("."):
            raise ConfigError(f"{origin}: network {name}: plugin #{i + 1} has no valid 'type'")
        caps = p.get("capabilities", {})
        if not isinstance(caps, dict):
            raise ConfigError(f"{origin}: network {name}: plugin {t}: 'capabilities' not an object")
        ipam = p.get("ipam")
        bad_ipam = not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str)
        if ipam is not None and bad_ipam:
            raise ConfigError(f"{origin}: network {name}: plugin {t}: 'ipam' needs a 'type'")
    return NetworkConfig(name, version, plugins, doc, None, list(versions))


def load_conflist(path: str | os.PathLike[str]) -> NetworkConfig:
    p = Path(path)
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"network config {p} not found") from None
    except OSError as err:
        raise ConfigError(f"{p}: {err.strerror}") from None
    conf = parse_conflist(text, str(p))
    conf.path = p
    return conf


# -- making networks --------------------------------------------------------------------


def build_conflist(
    name: str,
    bridge: str,
    subnet: str,
    gateway: str | None = None,
    internal: bool = False,
    labels: dict[str, str] | None = None,
    dns: bool = False,
    ip_range: str | None = None,
    firewall: bool = True,
) -> NetworkConfig:
    """The conflist of a bridge network: bridge + host-local, portmap, and firewall when the
    host's FORWARD chain would otherwise drop the containers' traffic (see NetworkStore)."""
    validate_name(name)
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {subnet!r}") from None
    if net.num_addresses < 4:
        raise InvalidArgument(f"subnet {subnet} is too small")
    gw = gateway or str(net.network_address + 1)
    try:
        gw_ip = ipaddress.ip_address(gw)
    except ValueError:
        raise InvalidArgument(f"invalid gateway {gateway!r}") from None
    if gw_ip not in net or gw_ip in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"gateway {gw} is not a host address in subnet {net}")
    rng: dict[str, Any] = {"subnet": str(net), "gateway": gw}
    if ip_range:
        try:
            r = ipaddress.ip_network(ip_range, strict=False)
        except ValueError:
            raise InvalidArgument(f"invalid ip range {ip_range!r}") from None
        if not r.subnet_of(net):  # type: ignore[arg-type]
            raise InvalidArgument(f"ip range {r} is not inside subnet {net}")
        rng["rangeStart"] = str(r.network_address + 1)
        rng["rangeEnd"] = str(r.broadcast_address - 1)
    ipam: dict[str, Any] = {"type": "host-local", "ranges": [[rng]]}
    if not internal:
        ipam["routes"] = [{"dst": "0.0.0.0/0" if net.version == 4 else "::/0"}]
    plugins: list[dict[str, Any]] = [
        {
            "type": "bridge",
            "bridge": bridge,
            "isGateway": True,
            "ipMasq": not internal,
            "hairpinMode": True,
            "capabilities": {"ips": True, "mac": True},
            "ipam": ipam,
        },
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]
    if firewall:
        plugins.append({"type": "firewall", "backend": "iptables"})
    # no `tuning`: with no sysctl or mtu to set it only costs an exec per ADD and DEL;
    # networks that need it add it to their conflist.
    raw: dict[str, Any] = {
        "cniVersion": DEFAULT_CNI_VERSION,
        "name": name,
        "plugins": plugins,
        "portside": {"labels": dict(labels or {}), "internal": internal, "dnsEnabled": dns},
    }
    return parse_conflist(json.dumps(raw), f"network {name}")


def default_network(firewall: bool = True) -> NetworkConfig:
    """`portside`: bridge portside0 on 10.88.0.0/16, no name resolution (as podman's)."""
    return build_conflist(DEFAULT_NETWORK, DEFAULT_BRIDGE, DEFAULT_SUBNET, firewall=firewall)


class NetworkStore:
    """Networks by name: ours in `directory` (writable), more in `extra_dirs` (read-only,
    e.g. /etc/cni/net.d); the first dir holding a name wins, ours first."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        extra_dirs: tuple[str, ...] = (),
        firewall: bool | Callable[[], bool] = True,
    ):
        """`firewall`: whether the networks we write get the firewall plugin, or a function
        deciding it when one is written. That plugin only opens the FORWARD chain for each
        container, which matters where its policy drops (docker, ufw), and it is the dearest
        of the chain (an exec and about ten iptables runs on every ADD and DEL)."""
        self.directory = Path(directory)
        self.extra_dirs = tuple(Path(d) for d in extra_dirs)
        self._firewall = firewall

    def wants_firewall(self) -> bool:
        if callable(self._firewall):
            self._firewall = bool(self._firewall())
        return self._firewall

    def _files(self) -> list[Path]:
        out: list[Path] = []
        for d in (self.directory, *self.extra_dirs):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                out += sorted(
                    p
                    for p in d.iterdir()
                    if p.suffix in (".conflist", ".conf", ".json") and not p.name.startswith(".")
                )
        return out

    def list(self) -> list[NetworkConfig]:
        """Every valid network once (first wins); the default one always present."""
        seen: dict[str, NetworkConfig] = {}
        for f in self._files():
            try:
                conf = load_conflist(f)
            except (ConfigError, NotFound):
                continue  # a broken file in a shared dir must not hide the others
            seen.setdefault(conf.name, conf)
        if DEFAULT_NETWORK not in seen:
            seen[DEFAULT_NETWORK] = self.ensure_default()
        return sorted(seen.values(), key=lambda c: c.name)

    def path_of(self, name: str) -> Path:
        return self.directory / f"{validate_name(name)}.conflist"

    def get(self, name: str) -> NetworkConfig:
        """The network `name`; a broken file of that name is an error naming the file."""
        validate_name(name)
        if name == DEFAULT_NETWORK:
            own = self.path_of(name)
            if not own.exists():
                return self.ensure_default()
        for f in self._files():
            if f.stem == name:
                conf = load_conflist(f)
                if conf.name == name:
                    return conf
        for f in self._files():
            with contextlib.suppress(ConfigError, NotFound):
                conf = load_conflist(f)
                if conf.name == name:
                    return conf
        raise NotFound(f"network {name} not found")

    def ensure_default(self) -> NetworkConfig:
        """Write the default network on first use (and keep a user's edits after that)."""
        path = self.path_of(DEFAULT_NETWORK)
        if path.exists():
            return load_conflist(path)
        conf = default_network(firewall=self.wants_firewall())
        self._write(path, conf, exclusive=False)
        conf.path = path
        return conf

    def _write(self, path: Path, conf: NetworkConfig, exclusive: bool) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(conf.to_json())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise AlreadyExists(f"network {conf.name} already exists") from None
            finally:
                tmp.unlink()
        else:
            os.rename(tmp, path)

    def create(
        self,
        name: str,
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        labels: dict[str, str] | None = None,
        dns: bool = True,
        ip_range: str | None = None,
    ) -> NetworkConfig:
        """A new bridge network; without --subnet the first free 10.89.N.0/24 (as podman).
        Serialised by a lock, so two creates never pick the same subnet or bridge."""
        validate_name(name)
        self.list()  # the default network first: its subnet and bridge are taken
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._create_locked(name, subnet, gateway, internal, labels, dns, ip_range)

    def _create_locked(
        self,
        name: str,
        subnet: str | None,
        gateway: str | None,
        internal: bool,
        labels: dict[str, str] | None,
        dns: bool,
        ip_range: str | None,
    ) -> NetworkConfig:
        existing = self.list()
        if any(c.name == name for c in existing):
            raise AlreadyExists(f"network {name} already exists")
        used_nets = [
            ipaddress.ip_network(s["subnet"], strict=False) for c in existing for s in c.subnets()
        ]
        if subnet is None:
            if gateway is not None:
                raise InvalidArgument("--gateway needs --subnet")
            for n in range(256):
                cand = ipaddress.ip_network(f"10.89.{n}.0/24")
                if not any(cand.overlaps(u) for u in used_nets):
                    subnet = str(cand)
                    break
            else:
                raise InvalidArgument("no free subnet left in 10.89.0.0/16; give --subnet")
        else:
            try:
                want = ipaddress.ip_network(subnet, strict=False)
            except ValueError:
                raise InvalidArgument(f"invalid subnet {subnet!r}") from None
            for c in existing:
                for s in c.subnets():
                    if want.overlaps(ipaddress.ip_network(s["subnet"], strict=False)):
                        raise InvalidArgument(
                            f"subnet {want} overlaps {s['subnet']} of network {c.name}"
                        )
        bridges = {c.bridge for c in existing}
        n = 1
        while f"portside{n}" in bridges:
            n += 1
        conf = build_conflist(
            name,
            f"portside{n}",
            subnet,
            gateway,
            internal,
            labels,
            dns,
            ip_range,
            firewall=self.wants_firewall(),
        )
        path = self.path_of(name)
        self._write(path, conf, exclusive=True)
        conf.path = path
        return conf

    def remove(self, name: str, in_use: bool = False) -> None:
        """Delete our conflist of `name` (not one in the read-only dirs)."""
        conf = self.get(name)
        if in_use:
            raise InUse(f"network {name} is in use by a container")
        if conf.path is None or conf.path.parent != self.directory:
            raise InvalidArgument(f"network {name} is defined in {conf.path}, not by portside")
        conf.path.unlink()

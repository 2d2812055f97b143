"""Names for containers: /etc/hosts, /etc/resolv.conf, /etc/hostname, and the per-network
name registry the DNS responder (dnsserver.py) answers from.

The registry is a JSON file per network under the run root, updated under an
flock with an atomic rename; the responder rereads it when its mtime changes,
so the engine never has to talk to the responder to add or remove a name.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside.errors import NetworkError

SEARCH_DOMAIN = "dns.portside"


# -- files in the container ---------------------------------------------------------------


def hostname_content(hostname: str) -> str:
    return hostname + "\n"


def hosts_content(
    hostname: str,
    own: Iterable[str] = (),
    names: Iterable[str] = (),
    peers: Iterable[tuple[str, Iterable[str]]] = (),
    extra: Iterable[tuple[str, str]] = (),
) -> str:
    """/etc/hosts: localhost, our own addresses under our hostname and `names`, the `peers`
    (ip, names) of our networks (the no-DNS way to reach them), and --add-host entries."""
    lines = [
        "127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4",
        "::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6",
    ]
    own_names = " ".join(dict.fromkeys([hostname, *names]))
    for ip in own:
        lines.append(f"{ip}\t{own_names}")
    if not list(own):
        lines.append(f"127.0.1.1\t{own_names}")
    for ip, pnames in peers:
        lines.append(f"{ip}\t{' '.join(dict.fromkeys(pnames))}")
    for host, ip in extra:
        lines.append(f"{ip}\t{host}")
    return "\n".join(lines) + "\n"


def _parse_resolv(text: str) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        parts = raw.split("#", 1)[0].split(";", 1)[0].split()
        if not parts:
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            servers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            search = parts[1:]
        elif parts[0] == "options":
            options += parts[1:]
    return servers, search, options


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return True


def upstream_servers(host_resolv: str | None = None) -> list[str]:
    """The host's nameservers a container can reach (loopback ones cannot be)."""
    if host_resolv is None:
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
    return [s for s in _parse_resolv(host_resolv)[0] if not _loopback(s)]


def resolv_content(
    host_resolv: str | None = None,
    dns: Iterable[str] = (),
    search: Iterable[str] | None = None,
    options: Iterable[str] | None = None,
    network_dns: Iterable[str] = (),
) -> str:
    """/etc/resolv.conf: --dns wins over the host's servers; the responders of our networks
    (their gateways) come first, with their search domain."""
    if host_resolv is None:
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
    h_servers, h_search, h_options = _parse_resolv(host_resolv)
    servers = list(dns) or [s for s in h_servers if not _loopback(s)]
    gw = list(network_dns)
    dom = list(search) if search is not None else h_search
    if gw:
        dom = [SEARCH_DOMAIN, *[d for d in dom if d != SEARCH_DOMAIN]]
    opts = list(options) if options is not None else h_options
    lines = []
    if dom:
        lines.append("search " + " ".join(dom))
    for s in dict.fromkeys([*gw, *servers]):
        lines.append(f"nameserver {s}")
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"


# -- the per-network name registry --------------------------------------------------------


@dataclass
class Registration:
    container_id: str
    names: list[str]
    ips: list[str]


@dataclass
class Registry:
    """RUNROOT/dns/NETWORK/names.json: container id -> names and addresses."""

    directory: Path
    network: str
    entries: dict[str, Registration] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.directory / self.network / "names.json"

    def lookup(self, name: str) -> list[str]:
        n = name.lower().rstrip(".")
        if n.endswith("." + SEARCH_DOMAIN):
            n = n[: -len(SEARCH_DOMAIN) - 1]
        return [
            ip for r in self.entries.values() if n in (x.lower() for x in r.names) for ip in r.ips
        ]


def _registry_file(directory: Path, network: str) -> Path:
    return Path(directory) / network / "names.json"


def read_registry(directory: Path, network: str) -> Registry:
    reg = Registry(Path(directory), network)
    try:
        doc = json.loads(_registry_file(directory, network).read_text())
    except (OSError, ValueError):
        return reg
    for cid, e in (doc.get("containers") or {}).items() if isinstance(doc, dict) else []:
        with contextlib.suppress(KeyError, TypeError):
            reg.entries[cid] = Registration(cid, list(e["names"]), list(e["ips"]))
    return reg


@contextlib.contextmanager
def _locked(directory: Path, network: str) -> Iterator[Registry]:
    d = Path(directory) / network
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reg = read_registry(directory, network)
        yield reg
        doc: dict[str, Any] = {
            "network": network,
            "containers": {
                cid: {"names": r.names, "ips": r.ips} for cid, r in sorted(reg.entries.items())
            },
        }
        tmp = d / f".names.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(doc))
        os.rename(tmp, d / "names.json")


def register(
    directory: Path, network: str, container_id: str, names: Iterable[str], ips: Iterable[str]
) -> None:
    """Add (or replace) a container's names (name, aliases, short id) on `network`."""
    with _locked(directory, network) as reg:
        reg.entries[container_id] = Registration(
            container_id, list(dict.fromkeys(names)), [i.split("/", 1)[0] for i in ips]
        )


def unregister(directory: Path, network: str, container_id: str) -> bool:
    """Remove a container; True when the network has no names left."""
    with _locked(directory, network) as reg:
        reg.entries.pop(container_id, None)
        return not reg.entries


# -- the responder's life -----------------------------------------------------------------


def _pidfile(directory: Path, network: str) -> Path:
    return Path(directory) / network / "responder.pid"


def responder_pid(directory: Path, network: str) -> int | None:
    """The running responder of `network`, checked by its command line (a stale pidfile
    may name someone else's process after a reboot)."""
    try:
        pid = int(_pidfile(directory, network).read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    reg = os.fsencode(_registry_file(directory, network))
    if b"portside.network.dnsserver" in cmdline and reg in cmdline:
        return pid
    return None


def start_responder(
    directory: Path,
    network: str,
    bind_ip: str,
    host_netns: str | None = None,
    upstreams: Iterable[str] | None = None,
    port: int = 53,
) -> int:
    """Start the network's DNS responder (once) bound to `bind_ip` (its gateway); detached,
    its own session, so it outlives the CLI as the containers do. Returns its pid.
    Serialised per network by a lock, so two containers starting together get one."""
    d = Path(directory) / network
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "responder.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = responder_pid(directory, network)
        if existing is not None:
            return existing
        return _spawn_responder(directory, network, bind_ip, host_netns, upstreams, port)


def _spawn_responder(
    directory: Path,
    network: str,
    bind_ip: str,
    host_netns: str | None,
    upstreams: Iterable[str] | None,
    port: int,
) -> int:
    reg = _registry_file(directory, network)
    if not reg.exists():
        with _locked(directory, network):
            pass
    ups = list(upstreams) if upstreams is not None else upstream_servers()
    argv = [
        sys.executable,
        "-m",
        "portside.network.dnsserver",
        "--registry",
        str(reg),
        "--bind",
        bind_ip,
        "--port",
        str(port),
    ]
    for u in ups:
        argv += ["--upstream", u]
    if host_netns:
        argv += ["--netns", host_netns]
    r, w = os.pipe()
    argv += ["--ready-fd", str(w)]
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        pass_fds=(w,),
        env=env,
    )
    os.close(w)
    with os.fdopen(r, "rb") as f:
        ready = f.read()  # EOF when it is bound (or died)
    if not ready.startswith(b"ok"):
        proc.wait()
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        raise NetworkError(
            f"network {network}: DNS responder on {bind_ip}:{port} did not start: "
            + (" ".join(err.splitlines()[-1:]) or f"exit status {proc.returncode}")
        )
    if proc.stderr:
        proc.stderr.close()
    tmp = _pidfile(directory, network).with_suffix(".tmp")
    tmp.write_text(f"{proc.pid}\n")
    os.rename(tmp, _pidfile(directory, network))
    return proc.pid


def stop_responder(directory: Path, network: str) -> bool:
    """Stop the responder (if ours and running) and wait for it; True when one was stopped."""
    pid = responder_pid(directory, network)
    with contextlib.suppress(FileNotFoundError):
        _pidfile(directory, network).unlink()
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # our child when we started it in this process
    # not our child: wait until it is gone (pidfd would need 3.9+ and Linux 5.3: fine)
    with contextlib.suppress(OSError):
        fd = os.pidfd_open(pid)
        import select

        select.select([fd], [], [], 5.0)
        os.close(fd)
    return True

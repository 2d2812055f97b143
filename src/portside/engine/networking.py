"""The engine's side of networking: which namespace a container joins, and bringing its
networks up at start and down at exit or rm (portside.network does the work).

Container record keys written here:
  net         the plan made at create: mode, networks (requests), published ports, the
              namespace path the spec names, and the host side the plugins ran in
  net_status  what the last start set up (addresses, MAC, gateway per network), or absent

The namespace of a container started attached (`run` without -d) is taken down by the
monitor's exit command (`python ... portside.engine.networking:main down ...`):
the DEL runs while `run` finishes, not before it returns. `net_status.token` tells that
command whether the network it was given is still the one up (a restart makes a new one).

Settings ([engine] in portside.toml): `default_network` (what an empty --network means;
PORTSIDE_DEFAULT_NETWORK wins over it: the test suite sets it to `none` so that tests
never make bridges in the machine's real namespace), `host_netns` (a namespace path
that stands for the host side: the plugins, the DNS responders and --network host use
it; tests point it at a namespace they made), `cni_plugin_dirs`, `cni_config_dirs`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portside.errors import InvalidArgument, NetworkError, NotFound

if TYPE_CHECKING:
    from portside.engine.api import CreateOptions
    from portside.network.api import Networking
    from portside.network.cleanup import CleanupReport

# podman's word for "the default for this user": the bridge network when rootful
FALLBACK_DEFAULT = "private"


def default_network(settings: dict[str, Any]) -> str:
    return (
        os.environ.get("PORTSIDE_DEFAULT_NETWORK")
        or str(settings.get("default_network") or "")
        or FALLBACK_DEFAULT
    )


def network_mode_name(net: dict[str, Any]) -> str:
    """inspect's HostConfig.NetworkMode, podman's way."""
    mode = net.get("mode", "none")
    if mode == "bridge":
        names = [r["name"] for r in net.get("requests") or []]
        return "bridge" if names == ["portside"] else ",".join(names)
    if mode == "container":
        return f"container:{net.get('target', '')}"
    if mode == "ns":
        return f"ns:{net.get('netns', '')}"
    return str(mode)


class EngineNetworking:
    """Per engine: settings, the run root's namespace pins, and the Networking handle."""

    def __init__(self, root: Path, runroot: Path, settings: dict[str, Any]) -> None:
        self.root = root
        self.runroot = runroot
        self.settings = settings
        self._net: Networking | None = None
        hn = settings.get("host_netns")
        self.host_netns: str | None = str(hn) if hn else None

    def networking(self, host_netns: str | None = None) -> Networking:
        """The library's handle for the host side `host_netns` (default: the configured)."""
        from portside.network.api import Networking
        from portside.network.cni.config import DEFAULT_PLUGIN_DIRS

        hn = host_netns if host_netns is not None else self.host_netns
        if self._net is not None and self._net.host_netns == hn:
            return self._net
        net = Networking(
            self.root,
            self.runroot,
            plugin_dirs=tuple(self.settings.get("cni_plugin_dirs") or DEFAULT_PLUGIN_DIRS),
            config_dirs=tuple(self.settings.get("cni_config_dirs") or ()),
            host_netns=hn,
        )
        self._net = net
        return net

    def netns_path(self, cid: str) -> Path:
        return self.runroot / "netns" / cid

    # -- create: the plan -------------------------------------------------------------

    def plan(
        self,
        opts: CreateOptions,
        cid: str,
        exposed: Sequence[str],
        lookup: Any,
    ) -> dict[str, Any]:
        """Check the network options and fix what stays for the container's life: mode,
        networks, published host ports (free ones chosen now, as podman), the namespace
        path for the spec. `lookup(ref)` returns another container's record."""
        from portside.network.mode import parse_network_mode

        value = opts.network or default_network(self.settings)
        mode = parse_network_mode(value)
        plan: dict[str, Any] = {
            "mode": mode.kind,
            "requests": [],
            "ports": [],
            "netns": "",
            "host_netns": self.host_netns,
        }
        bridge = mode.kind == "bridge"
        if not bridge:
            for flag, given in (
                ("--ip", opts.ip),
                ("--mac-address", opts.mac_address),
                ("--network-alias", opts.network_aliases),
                ("-p", opts.publish),
            ):
                if given:
                    raise InvalidArgument(f"{flag} needs a bridge network, not --network {value}")
        if mode.kind == "ns":  # a namespace someone else made and keeps: joined, not managed
            from portside.network import netns

            if not netns.is_pinned(mode.target):
                raise InvalidArgument(f"--network {value}: not a network namespace")
            plan["netns"] = os.path.abspath(mode.target)
        elif mode.kind == "host":
            plan["netns"] = self.host_netns or ""
        elif mode.kind == "container":
            other = lookup(mode.target)
            onet = other.get("net") or {"mode": "none"}
            plan["target"] = other["id"]
            if onet.get("mode") == "host":
                plan["mode"] = "host"
                plan["netns"] = onet.get("netns") or ""
            else:
                plan["netns"] = onet.get("netns") or str(self.netns_path(other["id"]))
        else:
            plan["netns"] = str(self.netns_path(cid))
        if bridge:
            net = self.networking()
            for i, name in enumerate(mode.networks):
                net.store.get(name)  # missing or broken: one line naming it, now
                plan["requests"].append(
                    {
                        "name": name,
                        "ip": opts.ip if i == 0 else None,
                        "mac": opts.mac_address if i == 0 else None,
                        "aliases": list(opts.network_aliases),
                    }
                )
            plan["ports"] = self._ports(opts, exposed)
        return plan

    def _ports(self, opts: CreateOptions, exposed: Sequence[str]) -> list[dict[str, Any]]:
        from portside.network import ports

        specs = [ports.parse_publish(p) for p in opts.publish]
        if opts.publish_all:
            given = {(s.container_start, s.protocol) for s in specs}
            for s in ports.parse_exposed(exposed):
                if (s.container_start, s.protocol) not in given:
                    specs.append(s)
        return [m.to_cni() for m in ports.resolve(specs)]

    # -- start: up ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _pins_locked(self) -> Iterator[None]:
        """Creating a pin and releasing the (then empty) pin directory exclude each other:
        a release must never detach a pin made meanwhile."""
        d = self.runroot / "locks"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "netns.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def up(self, doc: dict[str, Any], userdata: Path, lookup: Any) -> dict[str, Any]:
        """Make the namespace and run the plugins; write /etc/hosts and resolv.conf. Returns
        the status to record. On failure nothing is left behind and one line is raised."""
        import uuid

        return self.begin_up(doc, userdata, lookup, uuid.uuid4().hex, background=False).wait()

    def begin_up(
        self, doc: dict[str, Any], userdata: Path, lookup: Any, token: str, background: bool
    ) -> PendingUp:
        """up() in two halves. Now: the checks (networks, plugins: a bad one fails here,
        before anything exists), the pinned namespace and the container's files. Then the
        CNI ADDs: in a thread when `background` (the runtime's create needs only the pin
        and the files, so it runs meanwhile; the files get their content in place when
        ADD returns, before the container's process starts), else before returning."""
        from portside.network import dns

        plan = doc.get("net")
        if plan is None:  # a record older than networking: the runtime made its namespace
            return PendingUp({"networks": [], "ports": []})
        mode = plan.get("mode")
        cid = doc["id"]
        hostname = str(doc.get("hostname") or cid[:12])
        names = [doc["name"]]
        if mode == "host":
            _write_etc(userdata, hostname, _host_hosts(hostname), _host_resolv())
            return PendingUp({"networks": [], "ports": []})
        if mode == "ns":
            hosts = dns.hosts_content(hostname, (), names)
            _write_etc(userdata, hostname, hosts, dns.resolv_content())
            return PendingUp({"networks": [], "ports": []})
        if mode == "container":
            other = lookup(plan["target"])
            onet = other.get("net_status")
            if onet is None or not os.path.exists(plan["netns"]):
                raise InvalidArgument(
                    f"container {other['name']} (whose network this one shares) is not running"
                )
            src = userdata.parent / other["id"]
            hosts = _read(src / "hosts") or dns.hosts_content(hostname, (), names)
            resolv = _read(src / "resolv.conf") or dns.resolv_content()
            _write_etc(userdata, hostname, hosts, resolv)
            return PendingUp({"networks": onet.get("networks", []), "ports": onet.get("ports", [])})
        # cni: plugins ran, so taking it down is worth handing to the monitor's exit
        # command; a bare namespace (none) is one umount, done right away
        own = {"networks": [], "ports": [], "own": True, "token": token, "cni": mode == "bridge"}
        if mode != "bridge":
            self._pin(doc)
            with self._unpin_on_error(doc):
                _write_etc(
                    userdata, hostname, dns.hosts_content(hostname, (), names), dns.resolv_content()
                )
            return PendingUp(own)
        from portside.network.api import NetworkRequest
        from portside.network.ports import from_runtime_config

        net = self.networking(plan.get("host_netns"))
        reqs = [
            NetworkRequest(r["name"], r.get("ip"), r.get("mac"), list(r.get("aliases") or []))
            for r in plan.get("requests") or []
        ]
        for r in reqs:
            net.cni.resolve(net.store.get(r.name))
        created = self._pin(doc)
        aliases = [a for r in reqs for a in r.aliases]

        def attach() -> dict[str, Any]:
            try:
                res = net.setup(
                    cid,
                    created,
                    reqs,
                    ports=from_runtime_config(plan.get("ports") or []),
                    name=names[0],
                )
                hosts, resolv = res.hosts(hostname, [*names, *aliases]), res.resolv()
                _write_etc(userdata, hostname, hosts, resolv, in_place=background)
            except BaseException:
                with contextlib.suppress(NetworkError, OSError):
                    self._down(doc)
                raise
            return {
                **own,
                "networks": [
                    {
                        "network": s.network,
                        "ifname": s.ifname,
                        "ips": s.ips,
                        "mac": s.mac,
                        "gateway": s.gateway,
                        "aliases": next((r.aliases for r in reqs if r.name == s.network), []),
                    }
                    for s in res.networks
                ],
                "ports": plan.get("ports") or [],
            }

        if not background:
            return PendingUp(attach())
        with self._unpin_on_error(doc):
            _write_etc(
                userdata, hostname, dns.hosts_content(hostname, (), names), dns.resolv_content()
            )
        return PendingUp(own, attach)

    @contextlib.contextmanager
    def _unpin_on_error(self, doc: dict[str, Any]) -> Iterator[None]:
        """A failure after the pin was made takes it down again (half-made state)."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(NetworkError, OSError):
                self._down(doc)
            raise

    def _pin(self, doc: dict[str, Any]) -> Path:
        from portside.network import netns

        path = Path(doc["net"]["netns"])
        if os.path.lexists(path):  # a pin left by a crash: its plugins' state first
            self._down(doc)
        with self._pins_locked():
            return netns.create(self.runroot, path.name)

    # -- exit, rm: down -----------------------------------------------------------------

    def down_command(self, doc: dict[str, Any], token: str) -> list[str]:
        """The monitor's exit command that takes this start's network down (see main())."""
        plan = doc.get("net") or {}
        # isolated and without site (as the monitor's zygote): our source dir on the path
        src = str(Path(__file__).resolve().parents[2])
        boot = f"import sys; sys.path.insert(0, {src!r}); from portside.engine.networking "
        boot += "import main; sys.exit(main(sys.argv[1:]))"
        argv = [sys.executable, "-I", "-S", "-c", boot, "down"]
        argv += ["--root", str(self.root), "--runroot", str(self.runroot), "--token", token]
        argv += ["--mode", str(plan.get("mode", "none")), "--netns", str(plan.get("netns", ""))]
        if plan.get("host_netns"):
            argv += ["--host-netns", str(plan["host_netns"])]
        for d in self.settings.get("cni_plugin_dirs") or ():
            argv += ["--plugin-dir", str(d)]
        return [*argv, doc["id"]]

    def release(self, doc: dict[str, Any], exited: bool) -> bool:
        """At exit or rm: down now, or (when the monitor's exit command has it, i.e. the
        monitor finished) leave it to that; True when done here."""
        status = doc.get("net_status") or {}
        if status.get("by_monitor") and exited:
            d = self.runroot / "netdown"
            d.mkdir(parents=True, exist_ok=True)
            (d / doc["id"]).touch()  # not stale meanwhile (see stale())
            return False
        self.down(doc)
        return True

    def down(self, doc: dict[str, Any]) -> None:
        """DEL every attachment (from the CNI cache) and unpin the namespace; idempotent and
        cheap when nothing is up."""
        plan = doc.get("net") or {}
        if plan.get("mode") in ("host", "container", "ns"):
            return
        self._down(doc)

    def _down(self, doc: dict[str, Any]) -> None:
        from portside.network import netns

        plan = doc.get("net") or {}
        cid = doc["id"]
        path = Path(plan.get("netns") or self.netns_path(cid))
        first: Exception | None = None
        if plan.get("mode", "bridge") == "bridge" and self._has_cache(cid):
            try:
                self.networking(plan.get("host_netns")).teardown(cid, path)
            except NetworkError as err:
                first = err
        if os.path.lexists(path):
            with self._pins_locked():
                netns.remove(path)
                netns.release_dir(self.runroot)
        if first is not None:
            raise first

    def _has_cache(self, cid: str) -> bool:
        d = self.runroot / "cni" / "results"
        try:
            return any(f"-{cid}-" in n for n in os.listdir(d))
        except FileNotFoundError:
            return False

    # -- connect, disconnect ---------------------------------------------------------------

    def connect(
        self, doc: dict[str, Any], name: str, ip: str | None, mac: str | None, aliases: list[str]
    ) -> dict[str, Any]:
        """One more network on a running container; returns its status entry."""
        from portside.network.api import NetworkRequest

        net = self.networking((doc.get("net") or {}).get("host_netns"))
        st = net.connect(
            doc["id"],
            doc["net"]["netns"],
            NetworkRequest(name, ip, mac, list(aliases)),
            name=doc["name"],
        )
        return {
            "network": st.network,
            "ifname": st.ifname,
            "ips": st.ips,
            "mac": st.mac,
            "gateway": st.gateway,
            "aliases": list(aliases),
        }

    def disconnect(self, doc: dict[str, Any], name: str) -> None:
        net = self.networking((doc.get("net") or {}).get("host_netns"))
        net.disconnect(doc["id"], name)

    # -- crash sweep ------------------------------------------------------------------------

    def stale(self, live: set[str]) -> bool:
        """Pins or cached attachments of containers not in `live` nor being taken down by
        an exit command (cheap: three listdirs, no import; `ps` asks every time)."""
        with contextlib.suppress(FileNotFoundError):
            live = live | set(os.listdir(self.runroot / "netdown"))
        with contextlib.suppress(FileNotFoundError):
            pins = os.listdir(self.runroot / "netns")
            if any(n not in live for n in pins if not n.startswith(".")):
                return True
        with contextlib.suppress(FileNotFoundError):
            for n in os.listdir(self.runroot / "cni" / "results"):
                parts = n.rsplit("-", 2)
                if n.endswith(".json") and len(parts) == 3 and parts[1] not in live:
                    return True
        return False

    def sweep(self, live: set[str]) -> CleanupReport:
        """Remove the namespaces, attachments, leases, veths, firewall rules and names of
        containers not in `live` (start-up after a crash, `system prune`)."""
        from portside.network import netns
        from portside.network.cleanup import cleanup

        with self._pins_locked():
            report = cleanup(self.networking(), live)
            netns.release_dir(self.runroot)
        with contextlib.suppress(FileNotFoundError):
            for cid in os.listdir(self.runroot / "netdown"):
                if cid not in live:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.runroot / "netdown" / cid)
        return report

    def remove_unused_networks(self, live_docs: Sequence[dict[str, Any]]) -> list[str]:
        """`system prune`: our networks (not the default) that no container is on."""
        from portside.network.cni.config import DEFAULT_NETWORK

        net = self.networking()
        named = {
            r.get("name") for d in live_docs for r in (d.get("net") or {}).get("requests") or []
        }
        gone = []
        for c in net.store.list():
            if c.name == DEFAULT_NETWORK or net.in_use(c.name) or c.name in named:
                continue
            if c.path is None or c.path.parent != net.store.directory:
                continue
            with contextlib.suppress(NotFound, NetworkError):
                net.remove_network(c.name)
                gone.append(c.name)
        return gone


class PendingUp:
    """A network being brought up: `status` now (own, token), wait() for the final one."""

    def __init__(
        self, status: dict[str, Any], work: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.status = status
        self._result: dict[str, Any] | None = None if work else status
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if work is not None:
            self._thread = threading.Thread(target=self._run, args=(work,), name="cni-add")
            self._thread.start()

    def _run(self, work: Callable[[], dict[str, Any]]) -> None:
        try:
            self._result = work()
        except BaseException as err:  # handed to wait()
            self._error = err

    def wait(self) -> dict[str, Any]:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _host_hosts(hostname: str) -> str:
    text = _read(Path("/etc/hosts"))
    if text and not text.endswith("\n"):
        text += "\n"
    return text + f"127.0.1.1\t{hostname}\n"


def _host_resolv() -> str:
    return _read(Path("/etc/resolv.conf")) or "\n"


def _write_etc(
    userdata: Path, hostname: str, hosts: str, resolv: str, in_place: bool = False
) -> None:
    """The three files the spec bind-mounts, each replaced atomically; `in_place` once a
    runtime has bind-mounted them (a new inode would not be seen)."""
    userdata.mkdir(parents=True, exist_ok=True)
    if in_place:
        for name, text in (("hosts", hosts), ("resolv.conf", resolv)):
            with open(userdata / name, "w") as f:
                f.write(text)
        return
    for name, text in (
        ("hosts", hosts),
        ("resolv.conf", resolv),
        ("hostname", hostname + "\n"),
    ):
        tmp = userdata / f".{name}.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, userdata / name)


def connect_container(
    engine: Any, ref: str, network: str, ip: str | None, mac: str | None, aliases: list[str]
) -> None:
    """`network connect`: recorded for the next start, and added now if it runs."""
    from portside.engine.locks import locked
    from portside.errors import AlreadyExists

    cid = engine.resolve(ref)
    with locked(engine.lock_dir, cid):
        doc = engine.record(cid)
        plan = doc.get("net") or {}
        if plan.get("mode") != "bridge":
            raise InvalidArgument(
                f"container {doc['name']} has network mode {network_mode_name(plan)}: "
                "only containers on bridge networks can be connected"
            )
        if any(r["name"] == network for r in plan.get("requests") or []):
            raise AlreadyExists(f"container {doc['name']} is already on network {network}")
        engine.network.networking(plan.get("host_netns")).store.get(network)
        status = doc.get("net_status")
        if status is not None and engine.state_of(doc).running:
            entry = engine.network.connect(doc, network, ip, mac, aliases)
            status["networks"] = [*status.get("networks", []), entry]
            engine.db.update(cid, net_status=status)
        req = {"name": network, "ip": ip, "mac": mac, "aliases": list(aliases)}
        plan["requests"] = [*plan.get("requests", []), req]
        engine.db.update(cid, net=plan)


def disconnect_container(engine: Any, ref: str, network: str) -> None:
    """`network disconnect`: off the network now (if it runs) and at later starts."""
    from portside.engine.locks import locked

    cid = engine.resolve(ref)
    with locked(engine.lock_dir, cid):
        doc = engine.record(cid)
        plan = doc.get("net") or {}
        if not any(r["name"] == network for r in plan.get("requests") or []):
            raise NotFound(f"container {doc['name']} is not on network {network}")
        status = doc.get("net_status")
        if status is not None and engine.state_of(doc).running:
            engine.network.disconnect(doc, network)
            status["networks"] = [n for n in status.get("networks", []) if n["network"] != network]
            engine.db.update(cid, net_status=status)
        plan["requests"] = [r for r in plan["requests"] if r["name"] != network]
        engine.db.update(cid, net=plan)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m portside.engine.networking down ... CID`: a monitor's exit command. Takes
    the network down unless the container has started again meanwhile (another token);
    works from its arguments and the CNI cache when the record is already gone."""
    import argparse

    from portside.engine.locks import drop, locked
    from portside.engine.state import StateDB

    ap = argparse.ArgumentParser(prog="portside-network-down")
    ap.add_argument("verb", choices=["down"])
    for opt in ("--root", "--runroot", "--token", "--mode", "--netns"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--host-netns", default=None)
    ap.add_argument("--plugin-dir", action="append", default=[])
    ap.add_argument("cid")
    a = ap.parse_args(argv)
    root, runroot = Path(a.root), Path(a.runroot)
    locks = runroot / "locks"
    gone = False
    with locked(locks, a.cid):
        db = StateDB(root / "portside.db") if (root / "portside.db").exists() else None
        try:
            doc = db.get(a.cid) if db is not None else None
            gone = doc is None
            if doc is not None and (doc.get("net_status") or {}).get("token") != a.token:
                return 0  # already down, or up again from a newer start
            plan = {"mode": a.mode, "netns": a.netns, "host_netns": a.host_netns}
            try:
                settings = {"cni_plugin_dirs": a.plugin_dir}
                EngineNetworking(root, runroot, settings)._down({"id": a.cid, "net": plan})
            finally:
                if doc is not None and db is not None:
                    db.update(a.cid, net_status=None)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(runroot / "netdown" / a.cid)
        finally:
            if db is not None:
                db.close()
    if gone:
        drop(locks, a.cid)
    return 0


if __name__ == "__main__":
    sys.exit(main())

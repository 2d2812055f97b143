"""Running CNI plugins per the CNI spec: ADD, DEL, CHECK, STATUS, GC and VERSION.

Each plugin is exec'd with the CNI_* environment and its own config on stdin
(with `name`, `cniVersion`, `runtimeConfig` and `prevResult` added, as the spec
says); an ADD result is chained through the list and cached for DEL/CHECK. The
plugins run in `host_netns` when given (the host side need not be ours: tests
build one, and a rootless engine would use a helper namespace).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside.errors import CniPluginError, NetworkError
from portside.network import netns as _netns
from portside.network.cni import result as cache
from portside.network.cni.config import DEFAULT_PLUGIN_DIRS, NetworkConfig, parse_conflist

_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@dataclass
class CniOptions:
    """Where plugins live, where state goes, and which namespace is the host side."""

    cache_dir: Path  # RUNROOT/cni: result cache, version cache
    plugin_dirs: tuple[str, ...] = DEFAULT_PLUGIN_DIRS
    ipam_dir: Path | None = None  # host-local dataDir when a config names none
    host_netns: str | None = None  # run plugins here (None: our own namespace)
    timeout: float = 60.0

    @property
    def effective_ipam_dir(self) -> Path:
        return self.ipam_dir or Path(self.cache_dir) / "networks"


@dataclass
class Attachment:
    """One (container, interface) on one network."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: dict[str, str] = field(default_factory=dict)  # CNI_ARGS
    runtime_config: dict[str, Any] = field(default_factory=dict)  # portMappings, ips, mac


def find_plugin(kind: str, dirs: tuple[str, ...], network: str = "") -> str:
    for d in dirs:
        p = os.path.join(d, kind)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    where = f"network {network}: " if network else ""
    raise CniPluginError(
        f"{where}CNI plugin {kind!r} not found in {':'.join(dirs)}", plugin=kind, code=-1
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Invoker:
    """Runs one network's plugins; holds the version cache across calls."""

    def __init__(self, options: CniOptions) -> None:
        self.options = options
        self._versions: dict[str, list[str]] | None = None

    # -- low level ----------------------------------------------------------------------

    def exec_plugin(
        self,
        network: str,
        kind: str,
        path: str,
        command: str,
        stdin: dict[str, Any],
        att: Attachment | None = None,
    ) -> dict[str, Any] | None:
        """One exec; the JSON it printed (None if nothing); a failure raises one line."""
        env = {
            "CNI_COMMAND": command,
            "CNI_PATH": ":".join(self.options.plugin_dirs),
            "PATH": os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        if att is not None:
            env["CNI_CONTAINERID"] = att.container_id
            env["CNI_IFNAME"] = att.ifname
            if att.netns:
                env["CNI_NETNS"] = att.netns
            if att.args:
                env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in att.args.items())
        what = f"network {network}: CNI plugin {kind} ({command})"
        try:
            proc = subprocess.run(
                [path],
                input=json.dumps(stdin).encode(),
                env=env,
                capture_output=True,
                timeout=self.options.timeout,
                preexec_fn=_netns.setns_preexec(self.options.host_netns),
            )
        except subprocess.TimeoutExpired:
            raise CniPluginError(
                f"{what} timed out after {self.options.timeout:g}s", kind
            ) from None
        except OSError as err:
            raise CniPluginError(f"{what}: cannot run {path}: {err.strerror}", kind) from None
        out = proc.stdout.strip()
        if proc.returncode != 0:
            msg, code = "", 0
            try:
                doc = json.loads(out) if out else None
            except ValueError:
                doc = None
            if isinstance(doc, dict) and ("msg" in doc or "code" in doc):
                msg = str(doc.get("msg") or "")
                details = str(doc.get("details") or "")
                if details and details not in msg:
                    msg = f"{msg}: {details}" if msg else details
                code = int(doc.get("code") or 0) if str(doc.get("code", "0")).isdigit() else 0
            if not msg:
                msg = (proc.stderr or proc.stdout).decode(errors="replace").strip()
            if not msg:
                msg = f"exit status {proc.returncode}"
            raise CniPluginError(f"{what} failed: {_one_line(msg)}", kind, code)
        if not out:
            return None
        try:
            doc = json.loads(out)
        except ValueError:
            raise CniPluginError(f"{what} printed a result that is not JSON", kind) from None
        if not isinstance(doc, dict):
            raise CniPluginError(f"{what} printed a result that is not an object", kind)
        return doc

    def supported_versions(self, network: str, kind: str, path: str) -> list[str]:
        """VERSION, cached by the binary's path, size and mtime (it rarely changes)."""
        st = os.stat(path)
        key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
        cache_file = Path(self.options.cache_dir) / "versions.json"
        if self._versions is None:
            try:
                loaded = json.loads(cache_file.read_text())
                self._versions = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._versions = {}
        if key in self._versions:
            return list(self._versions[key])
        doc = self.exec_plugin(network, kind, path, "VERSION", {"cniVersion": "1.0.0"})
        versions = doc.get("supportedVersions") if doc else None
        if not isinstance(versions, list) or not versions:
            versions = ["0.1.0", "0.2.0"]  # the spec's answer for a plugin that says nothing
        versions = [str(v) for v in versions]
        self._versions[key] = versions
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(f".versions.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._versions))
            os.rename(tmp, cache_file)
        except OSError:
            pass  # only a cache
        return versions

    def resolve(self, conf: NetworkConfig) -> tuple[str, list[tuple[dict[str, Any], str]]]:
        """(negotiated version, [(plugin conf, binary)]): every plugin found and agreeing
        on a version BEFORE anything runs, so a bad config leaves nothing behind."""
        found = [
            (p, find_plugin(p["type"], self.options.plugin_dirs, conf.name)) for p in conf.plugins
        ]
        wanted = sorted({conf.cni_version, *conf.cni_versions}, key=_vkey, reverse=True)
        wanted = [v for v in wanted if _vkey(v) <= _vkey(conf.cni_version)] or [conf.cni_version]
        supported = {
            kind_path: self.supported_versions(conf.name, p["type"], kind_path)
            for p, kind_path in found
        }
        for v in wanted:
            if all(v in supported[path] for _, path in found):
                return v, found
        for p, path in found:
            if conf.cni_version not in supported[path]:
                raise CniPluginError(
                    f"network {conf.name}: CNI plugin {p['type']} does not support "
                    f"cniVersion {conf.cni_version} (it supports "
                    f"{', '.join(supported[path])})",
                    p["type"],
                    1,
                )
        raise CniPluginError(f"network {conf.name}: no CNI version all its plugins support")

    def _request(
        self,
        conf_name: str,
        version: str,
        plugin: dict[str, Any],
        att: Attachment,
        prev: dict[str, Any] | None,
    ) -> dict[str, Any]:
        req = {k: v for k, v in plugin.items() if k != "capabilities"}
        req["cniVersion"] = version
        req["name"] = conf_name
        caps = plugin.get("capabilities") or {}
        rc = {k: v for k, v in att.runtime_config.items() if caps.get(k)}
        if rc:
            req["runtimeConfig"] = rc
        if prev is not None and _vkey(version) >= _vkey("0.3.0"):
            req["prevResult"] = prev
        return req

    def effective(self, conf: NetworkConfig) -> NetworkConfig:
        """The config as run: host-local gets our dataDir unless it names one (kept in the
        cache, so DEL frees the lease where ADD took it)."""
        raw = copy.deepcopy(conf.raw)
        for p in raw.get("plugins", []):
            ipam = p.get("ipam")
            if isinstance(ipam, dict) and ipam.get("type") == "host-local":
                ipam.setdefault("dataDir", str(self.options.effective_ipam_dir))
        out = parse_conflist(json.dumps(raw), f"network {conf.name}")
        out.path = conf.path
        return out

    # -- the operations -----------------------------------------------------------------

    def add(self, conf: NetworkConfig, att: Attachment) -> dict[str, Any]:
        """ADD through the list; on failure, DEL what was done and raise one line."""
        conf = self.effective(conf)
        version, plugins = self.resolve(conf)
        prev: dict[str, Any] | None = None
        done = 0
        try:
            for plugin, path in plugins:
                done += 1
                if _idle(plugin, att):
                    continue
                req = self._request(conf.name, version, plugin, att, prev)
                res = self.exec_plugin(conf.name, plugin["type"], path, "ADD", req, att)
                if res is None:
                    raise CniPluginError(
                        f"network {conf.name}: CNI plugin {plugin['type']} (ADD) printed no result",
                        plugin["type"],
                    )
                prev = upgrade_result(res)
        except BaseException:
            for plugin, path in reversed(plugins[:done]):
                if _idle(plugin, att):
                    continue
                req = self._request(conf.name, version, plugin, att, prev)
                # best effort: the ADD's error is the one to report
                with contextlib.suppress(NetworkError):
                    self.exec_plugin(conf.name, plugin["type"], path, "DEL", req, att)
            raise
        assert prev is not None
        cache.save(
            Path(self.options.cache_dir),
            cache.CacheEntry(
                conf.name,
                att.container_id,
                att.ifname,
                att.netns,
                conf.raw,
                prev,
                dict(att.args),
                dict(att.runtime_config),
            ),
        )
        return prev

    def delete(self, conf: NetworkConfig | None, att: Attachment, network: str = "") -> None:
        """DEL in reverse order from the cached ADD (config, result, runtimeConfig), or from
        `conf` when nothing was cached; idempotent, goes on past errors, raises the first."""
        name = conf.name if conf is not None else network
        entry = cache.load(Path(self.options.cache_dir), name, att.container_id, att.ifname)
        if entry is not None:
            conf = parse_conflist(json.dumps(entry.config), f"cached network {name}")
            att = Attachment(
                att.container_id,
                att.netns or entry.netns,
                att.ifname,
                att.args or entry.args,
                att.runtime_config or entry.runtime_config,
            )
            prev: dict[str, Any] | None = entry.result
        elif conf is None:
            return  # nothing cached and no config: nothing was added
        else:
            conf = self.effective(conf)
            prev = None
        if att.netns and not os.path.exists(att.netns):
            att = Attachment(att.container_id, "", att.ifname, att.args, att.runtime_config)
        version, plugins = self.resolve(conf)
        first: NetworkError | None = None
        for plugin, path in reversed(plugins):
            if entry is not None and _idle(plugin, att):
                continue  # the cache says ADD skipped it too
            req = self._request(conf.name, version, plugin, att, prev)
            try:
                self.exec_plugin(conf.name, plugin["type"], path, "DEL", req, att)
            except NetworkError as err:
                first = first or err
        if first is not None:
            raise first
        cache.remove(Path(self.options.cache_dir), conf.name, att.container_id, att.ifname)

    def check(self, conf: NetworkConfig | None, att: Attachment, network: str = "") -> bool:
        """CHECK against the cached result; False when the config disables it or its version
        predates CHECK (0.4.0). Raises the plugin's error when the attachment is wrong."""
        name = conf.name if conf is not None else network
        entry = cache.load(Path(self.options.cache_dir), name, att.container_id, att.ifname)
        if entry is None:
            raise NetworkError(
                f"network {name}: no cached result for container {att.container_id} "
                f"interface {att.ifname}"
            )
        cconf = parse_conflist(json.dumps(entry.config), f"cached network {name}")
        if cconf.disable_check:
            return False
        version, plugins = self.resolve(cconf)
        if _vkey(version) < _vkey("0.4.0"):
            return False
        att = Attachment(
            att.container_id,
            att.netns or entry.netns,
            att.ifname,
            entry.args,
            entry.runtime_config,
        )
        has_v6 = any(":" in str(ip.get("address", "")) for ip in entry.result.get("ips", []))
        for plugin, path in plugins:
            if _idle(plugin, att) or (plugin["type"] == "portmap" and not has_v6):
                # portmap <= 1.1 CHECKs its IPv6 chain whenever ip6tables exists, even for an
                # IPv4-only container, and so always fails; its IPv4 rules are seen by DEL.
                continue
            req = self._request(cconf.name, version, plugin, att, entry.result)
            self.exec_plugin(cconf.name, plugin["type"], path, "CHECK", req, att)
        return True

    def status(self, conf: NetworkConfig) -> bool:
        """STATUS (CNI 1.1): False when the negotiated version has no STATUS; raises the
        plugin's error when it says the network is not ready."""
        conf = self.effective(conf)
        version, plugins = self.resolve(conf)
        if _vkey(version) < _vkey("1.1.0"):
            return False
        for plugin, path in plugins:
            req = {k: v for k, v in plugin.items() if k != "capabilities"}
            req.update(cniVersion=version, name=conf.name)
            self.exec_plugin(conf.name, plugin["type"], path, "STATUS", req)
        return True

    def gc(self, conf: NetworkConfig, valid: list[tuple[str, str]]) -> bool:
        """GC (CNI 1.1) with the attachments still valid; False when unsupported. Goes on
        past errors, as the spec asks, and raises the first at the end."""
        conf = self.effective(conf)
        if conf.raw.get("disableGC"):
            return False
        version, plugins = self.resolve(conf)
        if _vkey(version) < _vkey("1.1.0"):
            return False
        first: NetworkError | None = None
        attachments = [{"containerID": c, "ifname": i} for c, i in valid]
        for plugin, path in plugins:
            req = {k: v for k, v in plugin.items() if k != "capabilities"}
            req.update(cniVersion=version, name=conf.name)
            req["cni.dev/valid-attachments"] = attachments
            try:
                self.exec_plugin(conf.name, plugin["type"], path, "GC", req)
            except NetworkError as err:
                first = first or err
        if first is not None:
            raise first
        return True


def _idle(plugin: dict[str, Any], att: Attachment) -> bool:
    """portmap with no port to map does nothing on ADD, yet its ADD and DEL each cost an exec
    and several iptables calls: skipped then (and on DEL only when the cache proves ADD had no
    mappings), which halves the cost of a container without -p."""
    return plugin.get("type") == "portmap" and not att.runtime_config.get("portMappings")


def upgrade_result(res: dict[str, Any]) -> dict[str, Any]:
    """A 0.1/0.2 result (ip4/ip6 objects) in the 0.3+ shape the rest of us reads."""
    if "ips" in res or "interfaces" in res or not ("ip4" in res or "ip6" in res):
        return res
    out: dict[str, Any] = {"cniVersion": res.get("cniVersion", "0.2.0"), "ips": [], "routes": []}
    for fam in ("ip4", "ip6"):
        block = res.get(fam)
        if isinstance(block, dict) and block.get("ip"):
            ip: dict[str, Any] = {"address": block["ip"]}
            if block.get("gateway"):
                ip["gateway"] = block["gateway"]
            out["ips"].append(ip)
            out["routes"] += list(block.get("routes") or [])
    if res.get("dns"):
        out["dns"] = res["dns"]
    return out


def supported_spec_versions() -> tuple[str, ...]:
    return _VERSIONS

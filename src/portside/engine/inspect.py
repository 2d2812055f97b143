"""docker-like `inspect` JSON for a container."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from portside.engine.networking import network_mode_name

if TYPE_CHECKING:
    from portside.engine.local import LocalEngine


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def docker_inspect(engine: LocalEngine, doc: dict[str, Any]) -> dict[str, Any]:
    info = engine.info(doc)
    st = info.state
    opts = doc["options"]
    try:
        spec = json.loads((engine.bundle(doc["id"]) / "config.json").read_text())
    except (OSError, ValueError):
        spec = {}
    proc = spec.get("process") or {}
    res = (spec.get("linux") or {}).get("resources") or {}
    mounts = []
    for m in doc.get("mounts") or []:
        mounts.append(
            {
                "Type": m["kind"],
                "Name": m["source"] if m["kind"] == "volume" else "",
                "Source": str(engine.volumes.path(m["source"]))
                if m["kind"] == "volume"
                else m["source"],
                "Destination": m["destination"],
                "RW": not m.get("readonly"),
            }
        )
    state: dict[str, Any] = {
        "Status": st.status,
        "Running": st.running,
        "Paused": st.paused,
        "Restarting": st.restarting,
        "OOMKilled": st.oom_killed,
        "Dead": st.dead,
        "Pid": st.pid,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": st.started_at or "0001-01-01T00:00:00Z",
        "FinishedAt": st.finished_at or "0001-01-01T00:00:00Z",
    }
    if st.health is not None:
        state["Health"] = st.health
    return {
        "Id": doc["id"],
        "Created": _iso(float(doc["created"])),
        "Path": doc["command"][0],
        "Args": doc["command"][1:],
        "State": state,
        "Image": "sha256:" + doc["image_id"],
        "ImageName": doc["image"],
        "Name": doc["name"],
        "RestartCount": st.restart_count,
        "Driver": engine.layers.driver_name if doc.get("snapshot") else "",
        "OCIRuntime": doc["runtime"],
        "LogPath": doc["log_path"],
        "Mounts": mounts,
        "Config": {
            "Hostname": doc.get("hostname", ""),
            "User": opts.get("user") or "",
            "Env": proc.get("env") or [],
            "Cmd": doc["command"],
            "Image": doc["image"],
            "WorkingDir": proc.get("cwd", "/"),
            "Entrypoint": opts.get("entrypoint"),
            "Labels": doc.get("labels") or {},
            "StopSignal": doc.get("stop_signal"),
            "StopTimeout": doc.get("stop_timeout"),
            "Tty": bool(opts.get("tty")),
            "OpenStdin": bool(opts.get("interactive")),
            "ExposedPorts": {p: {} for p in doc.get("exposed_ports") or []},
            "Healthcheck": doc.get("health"),
        },
        "HostConfig": {
            "AutoRemove": bool(opts.get("remove")),
            "RestartPolicy": {"Name": opts.get("restart") or "no"},
            "Privileged": bool(opts.get("privileged")),
            "ReadonlyRootfs": bool(opts.get("read_only")),
            "CapAdd": opts.get("cap_add") or [],
            "CapDrop": opts.get("cap_drop") or [],
            "SecurityOpt": opts.get("security_opt") or [],
            "Memory": (res.get("memory") or {}).get("limit", 0),
            "MemorySwap": (res.get("memory") or {}).get("swap", 0),
            "NanoCpus": int((opts.get("cpus") or 0) * 1e9),
            "CpuShares": (res.get("cpu") or {}).get("shares", 0),
            "CpusetCpus": (res.get("cpu") or {}).get("cpus", ""),
            "PidsLimit": (res.get("pids") or {}).get("limit", 0),
            "NetworkMode": network_mode_name(doc.get("net") or {"mode": "none"}),
            "PortBindings": _ports(((doc.get("net") or {}).get("ports")) or []),
            "LogConfig": {"Type": doc["log_driver"], "Config": opts.get("log_opts") or {}},
            "Init": bool(opts.get("init")),
            "Runtime": doc["runtime"],
        },
        "GraphDriver": {"Name": "overlay", "Data": {"MergedDir": doc.get("rootfs", "")}},
        "NetworkSettings": network_settings(doc, st.running),
    }


def _ports(ports: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        key = f"{p['containerPort']}/{p.get('protocol', 'tcp')}"
        out.setdefault(key, []).append(
            {"HostIp": str(p.get("hostIP", "")), "HostPort": str(p["hostPort"])}
        )
    return out


def _addr(cidr: str) -> tuple[str, int]:
    ip, _, plen = cidr.partition("/")
    return ip, int(plen or 0)


def _endpoint(n: dict[str, Any]) -> dict[str, Any]:
    v4 = [_addr(c) for c in n.get("ips") or [] if ":" not in c]
    v6 = [_addr(c) for c in n.get("ips") or [] if ":" in c]
    gw = str(n.get("gateway") or "")
    return {
        "EndpointID": "",
        "Gateway": gw if ":" not in gw else "",
        "IPAddress": v4[0][0] if v4 else "",
        "IPPrefixLen": v4[0][1] if v4 else 0,
        "IPv6Gateway": gw if ":" in gw else "",
        "GlobalIPv6Address": v6[0][0] if v6 else "",
        "GlobalIPv6PrefixLen": v6[0][1] if v6 else 0,
        "MacAddress": str(n.get("mac") or ""),
    }


def network_settings(doc: dict[str, Any], running: bool) -> dict[str, Any]:
    """podman's NetworkSettings: the first network's address at the top, every network
    under Networks; addresses only while the network is up."""
    plan = doc.get("net") or {}
    status = (doc.get("net_status") or {}) if running else {}
    up = {n["network"]: n for n in status.get("networks") or []}
    networks = {}
    for r in plan.get("requests") or []:
        n = up.get(r["name"], {})
        networks[r["name"]] = {
            **_endpoint(n),
            "NetworkID": r["name"],
            "DriverOpts": None,
            "IPAMConfig": None,
            "Links": None,
            "Aliases": [doc["id"][:12], *(r.get("aliases") or [])],
        }
    first: dict[str, Any] = next(iter(up.values()), {})
    return {
        **_endpoint(first),
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": False,
        "Ports": _ports(plan.get("ports") or []),
        "SandboxKey": plan.get("netns", "") if plan.get("mode") != "host" else "",
        "Networks": networks,
    }

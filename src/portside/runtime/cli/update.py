"""`update [-r resources.json | flags] ID`: change a container's cgroup limits."""

from __future__ import annotations

import json
import sys

from portside.errors import InvalidArgument, RuntimeFailure
from portside.runtime.cli import args as a
from portside.runtime.cli.common import load
from portside.runtime.cli.main import Globals

# flag -> (section, key, kind)
FIELDS = {
    "--blkio-weight": ("blockIO", "weight", int),
    "--cpu-period": ("cpu", "period", int),
    "--cpu-quota": ("cpu", "quota", int),
    "--cpu-share": ("cpu", "shares", int),
    "--cpu-rt-period": ("cpu", "realtimePeriod", int),
    "--cpu-rt-runtime": ("cpu", "realtimeRuntime", int),
    "--cpuset-cpus": ("cpu", "cpus", str),
    "--cpuset-mems": ("cpu", "mems", str),
    "--memory": ("memory", "limit", "bytes"),
    "--memory-reservation": ("memory", "reservation", "bytes"),
    "--memory-swap": ("memory", "swap", "bytes"),
    "--pids-limit": ("pids", "limit", int),
}
FLAGS: a.Spec = {name: (name[2:], a.STR) for name in FIELDS}
FLAGS["--resources"] = ("resources", a.STR)
FLAGS["-r"] = ("resources", a.STR)

_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(value: str) -> int:
    v = value.strip().lower().removesuffix("b") or "0"
    if v == "-1":
        return -1
    mult = 1
    if v[-1] in _UNITS:
        mult = _UNITS[v[-1]]
        v = v[:-1]
    try:
        return int(float(v) * mult)
    except ValueError:
        raise InvalidArgument(f"invalid value for memory: {value}") from None


def main(g: Globals, verb: str, argv: list[str]) -> int:
    opts, rest = a.parse(argv, FLAGS)
    c = load(g, a.one_id(rest, verb))
    resources: dict[str, dict[str, object]] = {}
    source = opts.get("resources")
    if source:
        if source == "-":
            raw = sys.stdin.read()
        else:
            with open(str(source)) as f:
                raw = f.read()
        try:
            loaded = json.loads(raw)
        except ValueError as e:
            raise InvalidArgument(f"invalid resources JSON: {e}") from None
        resources = loaded
    for flag, (section, key, kind) in FIELDS.items():
        value = opts.get(flag[2:])
        if value is None:
            continue
        text = str(value)
        try:
            parsed = parse_bytes(text) if kind == "bytes" else (int(text) if kind is int else text)
        except ValueError:
            raise InvalidArgument(f"invalid value for {flag}: {text}") from None
        resources.setdefault(section, {})[key] = parsed
    if c.status() == "stopped":
        raise RuntimeFailure("cannot update a stopped container")
    mgr = c.cgroup()
    if mgr is None:
        raise RuntimeFailure("container has no cgroup")
    mgr.apply_resources(resources)
    return 0

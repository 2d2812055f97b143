"""`events [--stats] [--interval N] ID`: stats and OOM notifications as JSON lines."""

from __future__ import annotations

import json
import sys
import time

from portside.errors import InvalidArgument, RuntimeFailure
from portside.runtime.cli import args as a
from portside.runtime.cli.common import load
from portside.runtime.cli.main import Globals

FLAGS: a.Spec = {"--stats": ("stats", a.BOOL), "--interval": ("interval", a.STR)}


def _interval(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0}
    for suffix, mult in units.items():
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * mult
            except ValueError:
                break
    raise InvalidArgument(f"invalid duration {text!r} for --interval")


def _emit(kind: str, cid: str, data: object | None = None) -> None:
    event: dict[str, object] = {"type": kind, "id": cid}
    if data is not None:
        event["data"] = data
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(g: Globals, verb: str, argv: list[str]) -> int:
    opts, rest = a.parse(argv, FLAGS)
    c = load(g, a.one_id(rest, verb))
    if c.status() == "stopped":
        raise RuntimeFailure(f"container with id {c.id} is not running")
    mgr = c.cgroup()
    if mgr is None:
        raise RuntimeFailure("container has no cgroup")
    if opts["stats"]:
        _emit("stats", c.id, mgr.stats())
        return 0
    interval = _interval(str(opts.get("interval") or "5s"))
    ooms = mgr.oom_kill_count()
    next_stats = time.monotonic() + interval
    while c.alive():
        count = mgr.oom_kill_count()
        if count > ooms:
            ooms = count
            _emit("oom", c.id)
        if time.monotonic() >= next_stats:
            _emit("stats", c.id, mgr.stats())
            next_stats += interval
        time.sleep(min(0.1, interval))
    count = mgr.oom_kill_count() if mgr.exists() else ooms
    if count > ooms:
        _emit("oom", c.id)
    return 0

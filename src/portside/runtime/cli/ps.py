"""`ps [-f table|json] ID [ps options]`: the container's processes, via ps(1) as runc does."""

from __future__ import annotations

import json
import subprocess
import sys

from portside.errors import InvalidArgument, RuntimeFailure
from portside.runtime.cli import args as a
from portside.runtime.cli.common import load
from portside.runtime.cli.main import Globals

FLAGS: a.Spec = {"--format": ("format", a.STR), "-f": ("format", a.STR)}


def main(g: Globals, verb: str, argv: list[str]) -> int:
    opts, rest = a.parse(argv, FLAGS, interspersed=False)
    if not rest:
        raise InvalidArgument('"ps" requires a minimum of 1 argument')
    c = load(g, rest[0])
    mgr = c.cgroup()
    pids = sorted(mgr.pids()) if mgr is not None else ([c.pid] if c.alive() else [])
    if opts.get("format") == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
        return 0
    ps_args = rest[1:] or ["-ef"]
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeFailure(f"ps failed: {e}") from None
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    try:
        col = header.index("PID")
    except ValueError:
        raise RuntimeFailure("couldn't find PID field in ps output") from None
    keep = set(pids)
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in keep:
            print(line)
    return 0

"""`pause ID` / `resume ID`: the cgroup freezer."""

from __future__ import annotations

from portside.errors import RuntimeFailure
from portside.runtime.cli import args as a
from portside.runtime.cli.common import load
from portside.runtime.cli.main import Globals


def main(g: Globals, verb: str, argv: list[str]) -> int:
    _, rest = a.parse(argv, {})
    c = load(g, a.one_id(rest, verb))
    status = c.status()
    mgr = c.cgroup()
    if mgr is None:
        raise RuntimeFailure("container has no cgroup to freeze")
    if verb == "pause":
        if status not in ("running", "created"):
            raise RuntimeFailure(f"container not running or created: {status}")
        mgr.freeze()
    else:
        if status != "paused":
            raise RuntimeFailure("container not paused")
        mgr.thaw()
    return 0

"""`list [-f table|json] [-q]`."""

from __future__ import annotations

import sys

from portside.runtime.cli import args as a
from portside.runtime.cli.common import print_json, root
from portside.runtime.cli.main import Globals
from portside.runtime.container import Container

FLAGS: a.Spec = {
    "--format": ("format", a.STR),
    "-f": ("format", a.STR),
    "--quiet": ("quiet", a.BOOL),
    "-q": ("quiet", a.BOOL),
}


def _table(rows: list[list[str]]) -> str:
    """Go's tabwriter(minwidth 12, padding 3) as runc uses it: the last cell is not padded."""
    widths = [0] * (len(rows[0]) - 1)
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell) + 3, 12)
    lines = []
    for row in rows:
        lines.append("".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + row[-1])
    return "\n".join(lines) + "\n"


def main(g: Globals, verb: str, argv: list[str]) -> int:
    opts, _ = a.parse(argv, FLAGS)
    containers = Container.list(root(g))
    if opts["quiet"]:
        sys.stdout.write("".join(c.id + "\n" for c in containers))
        return 0
    states = [c.oci_state() for c in containers]
    for s in states:
        s["owner"] = "root"
    if opts.get("format") == "json":
        print_json(states, indent=None)
        return 0
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [
        [s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], "root"] for s in states
    ]
    sys.stdout.write(_table(rows))
    return 0

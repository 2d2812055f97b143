"""`start ID`: let a created container's process run."""

from __future__ import annotations

from portside.runtime.cli import args as a
from portside.runtime.cli.common import load
from portside.runtime.cli.main import Globals


def main(g: Globals, verb: str, argv: list[str]) -> int:
    from portside.runtime.process import launcher

    _, rest = a.parse(argv, {})
    launcher.start(load(g, a.one_id(rest, verb)))
    return 0

"""`delete [--force] ID`: remove a stopped container (or kill it first with --force)."""

from __future__ import annotations

from portside.errors import NotFound
from portside.runtime.cli import args as a
from portside.runtime.cli.common import load
from portside.runtime.cli.main import Globals

FLAGS: a.Spec = {"--force": ("force", a.BOOL), "-f": ("force", a.BOOL)}


def main(g: Globals, verb: str, argv: list[str]) -> int:
    from portside.runtime.process import launcher

    opts, rest = a.parse(argv, FLAGS)
    if not rest:
        raise NotFound('"delete" requires a minimum of 1 argument')
    for cid in rest:
        try:
            c = load(g, cid)
        except NotFound:
            if opts["force"]:
                continue
            raise
        launcher.delete(c, bool(opts["force"]))
    return 0

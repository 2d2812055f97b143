"""`kill [--all] ID [SIGNAL]` (SIGTERM by default; names or numbers)."""

from __future__ import annotations

from portside.errors import InvalidArgument
from portside.runtime.cli import args as a
from portside.runtime.cli.common import load
from portside.runtime.cli.main import Globals

FLAGS: a.Spec = {"--all": ("all", a.BOOL), "-a": ("all", a.BOOL)}


def main(g: Globals, verb: str, argv: list[str]) -> int:
    from portside.runtime.process import launcher

    opts, rest = a.parse(argv, FLAGS)
    if not 1 <= len(rest) <= 2:
        raise InvalidArgument(f'"{verb}" requires a minimum of 1 and a maximum of 2 arguments')
    sig = launcher.signal_number(rest[1] if len(rest) == 2 else "SIGTERM")
    launcher.kill(load(g, rest[0]), sig, bool(opts["all"]))
    return 0

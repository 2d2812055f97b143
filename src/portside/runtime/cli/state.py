"""`state ID`: the runtime-spec state JSON."""

from __future__ import annotations

from portside.runtime.cli import args as a
from portside.runtime.cli.common import load, print_json
from portside.runtime.cli.main import Globals


def main(g: Globals, verb: str, argv: list[str]) -> int:
    _, rest = a.parse(argv, {})
    print_json(load(g, a.one_id(rest, verb)).oci_state())
    return 0

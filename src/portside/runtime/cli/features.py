"""`features`: the JSON of supported features."""

from __future__ import annotations

from portside.runtime.cli import args as a
from portside.runtime.cli.common import print_json
from portside.runtime.cli.main import Globals


def main(g: Globals, verb: str, argv: list[str]) -> int:
    from portside.runtime.features import features

    a.parse(argv, {})
    print_json(features(), indent=4)
    return 0

"""Entry point of `portside-runtime` (runc's command line)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch a runc-style verb; the verbs arrive with the runtime issue."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--version"]:
        from portside import __version__

        print(f"portside-runtime version {__version__}")
        return 0
    print("portside-runtime: no such command", file=sys.stderr)
    return 1

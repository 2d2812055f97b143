"""A small flag parser with Go's conventions (-flag, --flag, --flag=value).

runc's callers pass flags the Go way; argparse would also cost more start-up
time than a whole container run is allowed, so verbs declare their flags in a
dict and get a dict back.
"""

from __future__ import annotations

from portside.errors import InvalidArgument

BOOL, STR, INT, LIST = "bool", "str", "int", "list"

Spec = dict[str, tuple[str, str]]  # flag -> (destination, kind)


def parse(
    argv: list[str], spec: Spec, *, interspersed: bool = True
) -> tuple[dict[str, object], list[str]]:
    """Flags to a dict (missing: bool False, list [], others absent) and the positionals.

    With `interspersed`, flags may follow positionals (urfave/cli's reordering);
    without it the first positional ends the flags (exec: the command's own flags).
    """
    out: dict[str, object] = {}
    for dest, kind in spec.values():
        if kind == BOOL:
            out.setdefault(dest, False)
        elif kind == LIST:
            out.setdefault(dest, [])
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            rest.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            if not interspersed:
                rest.extend(argv[i:])
                break
            continue
        name, eq, value = arg.partition("=")
        if not name.startswith("--") and len(name) > 2:
            name = "-" + name  # Go accepts -flag for --flag
        if name not in spec:
            raise InvalidArgument(f"flag provided but not defined: {name.lstrip('-')}")
        dest, kind = spec[name]
        if kind == BOOL:
            out[dest] = value.lower() not in ("false", "0") if eq else True
            continue
        if not eq:
            if i >= len(argv):
                raise InvalidArgument(f"flag needs an argument: {name}")
            value = argv[i]
            i += 1
        if kind == INT:
            try:
                out[dest] = int(value)
            except ValueError:
                raise InvalidArgument(f"invalid value {value!r} for flag {name}") from None
        elif kind == LIST:
            lst = out[dest]
            assert isinstance(lst, list)
            lst.append(value)
        else:
            out[dest] = value
    return out, rest


def one_id(rest: list[str], verb: str) -> str:
    if len(rest) != 1:
        raise InvalidArgument(
            f'"{verb}" requires exactly 1 argument(s)'
            if rest
            else f'"{verb}" requires a container id'
        )
    return rest[0]

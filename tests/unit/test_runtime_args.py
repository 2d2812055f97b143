"""The runtime's flag parser follows Go's conventions, as runc's callers expect."""

from __future__ import annotations

import pytest

from portside.errors import InvalidArgument
from portside.runtime.cli import args as a

SPEC: a.Spec = {
    "--bundle": ("bundle", a.STR),
    "-b": ("bundle", a.STR),
    "--detach": ("detach", a.BOOL),
    "-d": ("detach", a.BOOL),
    "--env": ("env", a.LIST),
    "--preserve-fds": ("fds", a.INT),
}


def test_forms() -> None:
    opts, rest = a.parse(
        ["-bundle=/b", "id", "--detach", "--env", "A=1", "--env=B=2", "--preserve-fds", "2"], SPEC
    )
    assert opts == {"bundle": "/b", "detach": True, "env": ["A=1", "B=2"], "fds": 2}
    assert rest == ["id"]
    opts, rest = a.parse(["-d=false", "--", "-x"], SPEC)
    assert opts["detach"] is False and rest == ["-x"]


def test_not_interspersed_stops_at_the_first_positional() -> None:
    opts, rest = a.parse(["-d", "id", "sh", "-c", "echo"], SPEC, interspersed=False)
    assert opts["detach"] is True and rest == ["id", "sh", "-c", "echo"]


def test_errors() -> None:
    with pytest.raises(InvalidArgument, match="flag provided but not defined: nope"):
        a.parse(["--nope"], SPEC)
    with pytest.raises(InvalidArgument, match="needs an argument"):
        a.parse(["--bundle"], SPEC)
    with pytest.raises(InvalidArgument, match="invalid value"):
        a.parse(["--preserve-fds", "x"], SPEC)

"""Helpers the verb modules share: the state root and finding a container."""

from __future__ import annotations

import sys

from portside.runtime import fastjson
from portside.runtime.cli.main import Globals
from portside.runtime.container import Container, root_from_env

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any


def root(g: Globals) -> str:
    return root_from_env(g.root)


def load(g: Globals, cid: str) -> Container:
    return Container.load(root(g), cid)


def print_json(obj: Any, indent: int | None = 2) -> None:
    sys.stdout.write(fastjson.dumps(obj, indent=indent) + ("\n" if indent is None else ""))
    sys.stdout.flush()

"""`spec [--rootless] [-b BUNDLE]`: write a default config.json, as `runc spec` does."""

from __future__ import annotations

import json
import os

from portside.errors import AlreadyExists
from portside.runtime.cli import args as a
from portside.runtime.cli.main import Globals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: a.Spec = {
    "--bundle": ("bundle", a.STR),
    "-b": ("bundle", a.STR),
    "--rootless": ("rootless", a.BOOL),
}


def default_spec(rootless: bool = False) -> dict[str, Any]:
    """runc's default config.json; the one copy lives with the runtime-spec models."""
    from portside.oci.runtime_spec import default_spec as spec_model_default

    return spec_model_default(rootless)


def main(g: Globals, verb: str, argv: list[str]) -> int:
    opts, _ = a.parse(argv, FLAGS)
    bundle = str(opts.get("bundle") or ".")
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise AlreadyExists("File config.json exists. Remove it first")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(default_spec(bool(opts["rootless"])), f, indent="\t")
    os.rename(tmp, path)
    return 0

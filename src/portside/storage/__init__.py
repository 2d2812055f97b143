"""Layer storage: secure layer apply, the layer store keyed by chain ID, the
overlay and vfs snapshot drivers (which return mount specs), and diffs.

Entry points for the engine and the CLI:
    LayerStore(root, driver)      .unpack/.unpack_chain/.writer, .prepare/.view/.remove,
                                  .mount/.unmount, .mount_image/.unmount_image,
                                  .changes/.diff/.commit, .usage, .acquire/.release/.prune
    Mount, mount_all, unmount_all the mount specs drivers hand out
    apply_layer, unpack_layer     one layer tar onto a directory, confined to it

The names load on first use (PEP 562): importing one submodule, e.g. the engine's
state database helper, must not pay for the whole stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portside.storage.apply import ApplyOptions, ApplyResult, apply_layer, unpack_layer
    from portside.storage.layers import Layer, LayerStore, LayerWriter, Snapshot, Usage
    from portside.storage.mounts import Mount, mount_all, unmount_all

_WHERE = {
    "ApplyOptions": "apply",
    "ApplyResult": "apply",
    "apply_layer": "apply",
    "unpack_layer": "apply",
    "Layer": "layers",
    "LayerStore": "layers",
    "LayerWriter": "layers",
    "Snapshot": "layers",
    "Usage": "layers",
    "Mount": "mounts",
    "mount_all": "mounts",
    "unmount_all": "mounts",
}

__all__ = [
    "ApplyOptions",
    "ApplyResult",
    "Layer",
    "LayerStore",
    "LayerWriter",
    "Mount",
    "Snapshot",
    "Usage",
    "apply_layer",
    "mount_all",
    "unmount_all",
    "unpack_layer",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'portside.storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"portside.storage.{module}"), name)
    globals()[name] = value
    return value

"""Layer storage: secure layer apply, the layer store keyed by chain ID, the
overlay and vfs snapshot drivers (which return mount specs), and diffs.

Entry points for the engine and the CLI:
    LayerStore(root, driver)      .unpack/.unpack_chain/.writer, .prepare/.view/.remove,
                                  .mount/.unmount, .mount_image/.unmount_image,
                                  .changes/.diff/.commit, .usage, .acquire/.release/.prune
    Mount, mount_all, unmount_all the mount specs drivers hand out
    apply_layer, unpack_layer     one layer tar onto a directory, confined to it
"""

from portside.storage.apply import ApplyOptions, ApplyResult, apply_layer, unpack_layer
from portside.storage.layers import Layer, LayerStore, LayerWriter, Snapshot, Usage
from portside.storage.mounts import Mount, mount_all, unmount_all

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

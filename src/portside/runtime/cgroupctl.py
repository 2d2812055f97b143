"""The runtime's side of the cgroup manager (portside.runtime.cgroups): make, save, restore.

Imported only by verbs that need a cgroup, so `state` and `list` stay light.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any


def create(cid: str, path: str | None, *, systemd: bool) -> Any:
    from portside.runtime import cgroups

    return cgroups.create_manager(cid, path, systemd=systemd)


def dump(manager: Any) -> dict[str, Any] | None:
    if manager is None:
        return None
    state: dict[str, Any] = manager.to_state()
    return state


def load(saved: dict[str, Any]) -> Any:
    from portside.runtime import cgroups

    return cgroups.from_state(saved)

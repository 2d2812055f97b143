"""`--network` values: which namespace a container gets (kept light: `create` parses it
for every container, also those that never touch CNI)."""

from __future__ import annotations

from dataclasses import dataclass

from portside.errors import InvalidArgument


@dataclass(frozen=True)
class NetworkMode:
    """`--network`: kind is none, host, container (target: its id), ns (target: a netns
    path) or bridge (networks: the names; the default network when none given)."""

    kind: str
    target: str = ""
    networks: tuple[str, ...] = ()

    @property
    def needs_netns(self) -> bool:
        """Whether the engine makes (and pins) a namespace of the container's own."""
        return self.kind in ("none", "bridge")


def parse_network_mode(value: str | None, default_network: str = "portside") -> NetworkMode:
    """Parse `--network` as docker and podman take it (`bridge` and `default` mean our default
    network; `private` is podman's word for it too)."""
    v = (value or "").strip()
    if v in ("", "bridge", "default", "private"):
        return NetworkMode("bridge", networks=(default_network,))
    if v in ("none", "host"):
        return NetworkMode(v)
    kind, sep, target = v.partition(":")
    if sep and kind in ("container", "ns"):
        if not target:
            raise InvalidArgument(f"invalid --network {v!r}: {kind}: needs a value")
        return NetworkMode(kind, target)
    names = tuple(n.strip() for n in v.split(","))
    from portside.network.cni.config import validate_name

    for n in names:
        if n in ("none", "host") or ":" in n:
            raise InvalidArgument(f"invalid --network {v!r}: {n} cannot be combined")
        validate_name(n)
    if len(set(names)) != len(names):
        raise InvalidArgument(f"invalid --network {v!r}: a network is named twice")
    return NetworkMode("bridge", networks=names)

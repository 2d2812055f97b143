"""Platforms (`os/arch[/variant]`), their normalisation, and picking one from an index.

Names differ between uname, Go and humans (x86_64/amd64, aarch64/arm64, armhf/arm v7);
everything is compared in the normalised Go/OCI spelling.
"""

from __future__ import annotations

import platform as _stdlib_platform
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from portside.errors import InvalidArgument, NotFound
from portside.oci._json import JSONModel, jfield

if TYPE_CHECKING:
    from portside.oci.descriptor import Descriptor

__all__ = [
    "Platform",
    "host_platform",
    "normalize_arch",
    "normalize_os",
    "parse_platform",
    "platform_matches",
    "select_manifest",
]

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8": "arm64",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "386": "386",
    "armhf": "arm",
    "armel": "arm",
    "armv5l": "arm",
    "armv6l": "arm",
    "armv7l": "arm",
    "arm": "arm",
    "ppc64le": "ppc64le",
    "ppc64el": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64le": "mips64le",
    "mips64el": "mips64le",
    "loong64": "loong64",
    "loongarch64": "loong64",
}

# The variant implied by an alias (armhf is arm v7, armel arm v6, ...).
_ALIAS_VARIANT = {
    "armhf": "v7",
    "armel": "v6",
    "armv5l": "v5",
    "armv6l": "v6",
    "armv7l": "v7",
    "armv8": "v8",
}

# The variant assumed when none is given.
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}

# For each arch, variants in order of preference: a host of variant X runs any variant before X.
_VARIANT_ORDER = {
    "arm": ["v5", "v6", "v7", "v8"],
    "arm64": ["v8", "v8.1", "v8.2", "v8.3", "v8.4", "v8.5", "v9", "v9.1", "v9.2"],
    "amd64": ["v1", "v2", "v3", "v4"],
}


def normalize_os(os_name: str) -> str:
    o = os_name.strip().lower()
    return {"macos": "darwin", "osx": "darwin"}.get(o, o)


def normalize_arch(arch: str, variant: str | None = None) -> tuple[str, str | None]:
    """(architecture, variant) in OCI spelling, with the arch's default variant filled in."""
    a = arch.strip().lower()
    v = (variant or "").strip().lower() or None
    if v is None:
        v = _ALIAS_VARIANT.get(a)
    a = _ARCH_ALIASES.get(a, a)
    if v is not None and v[0].isdigit():
        v = "v" + v
    if a == "arm64" and v in ("v8.0",):
        v = "v8"
    if a == "amd64" and v == "v1":
        v = None
    if v is None:
        v = _DEFAULT_VARIANT.get(a)
    return a, v


class Platform(JSONModel):
    """The `platform` object of an index entry (also the os/arch fields of a config)."""

    architecture: str = jfield("architecture", "str")
    os: str = jfield("os", "str")
    os_version: str | None = jfield("os.version", "str", default=None)
    os_features: list[str] | None = jfield("os.features", "strlist", default=None)
    variant: str | None = jfield("variant", "str", default=None)
    features: list[str] | None = jfield("features", "strlist", default=None)

    def normalized(self) -> Platform:
        """A copy in normalised spelling, default variants filled in (for comparing only)."""
        arch, variant = normalize_arch(self.architecture, self.variant)
        return Platform(
            architecture=arch,
            os=normalize_os(self.os),
            os_version=self.os_version,
            os_features=list(self.os_features) if self.os_features else None,
            variant=variant,
        )

    def __str__(self) -> str:
        out = f"{self.os}/{self.architecture}"
        if self.variant:
            out += f"/{self.variant}"
        return out

    def key(self) -> tuple[str, str, str]:
        """A hashable identity in normalised form."""
        n = self.normalized()
        return n.os, n.architecture, n.variant or ""


def parse_platform(text: str) -> Platform:
    """`os/arch[/variant]` (or `arch` alone, meaning linux) to a normalised Platform."""
    parts = text.strip().split("/")
    if not text.strip() or len(parts) > 3 or any(not p for p in parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant]")
    if len(parts) == 1:
        os_name, arch, variant = "linux", parts[0], None
    else:
        os_name, arch = parts[0], parts[1]
        variant = parts[2] if len(parts) == 3 else None
    return Platform(os=os_name, architecture=arch, variant=variant).normalized()


def host_platform() -> Platform:
    """The platform this process runs on, from uname (normalised)."""
    return Platform(
        os=_stdlib_platform.system() or "linux",
        architecture=_stdlib_platform.machine() or "amd64",
    ).normalized()


def _variant_rank(arch: str, wanted: str | None, candidate: str | None) -> int | None:
    """0 for the same variant, n > 0 for an older compatible one, None if it cannot run."""
    if wanted == candidate:
        return 0
    order = _VARIANT_ORDER.get(arch)
    if order is None or wanted not in order or candidate not in order:
        # Unknown variants match only themselves; amd64's None is v1, the oldest.
        if arch == "amd64" and candidate is None and wanted in (order or []):
            return 1 + (order or []).index(wanted)
        return None
    wi, ci = order.index(wanted), order.index(candidate)
    return wi - ci if ci <= wi else None


def platform_matches(wanted: Platform, candidate: Platform) -> bool:
    """True if an image for `candidate` runs on `wanted` (os, arch, compatible variant)."""
    return _match_rank(wanted.normalized(), candidate.normalized(), explicit=bool(wanted.variant))[
        0
    ]


def _match_rank(w: Platform, c: Platform, explicit: bool) -> tuple[bool, int]:
    if w.os != c.os or w.architecture != c.architecture:
        return False, 0
    if w.os_version and c.os_version and w.os_version != c.os_version:
        return False, 0
    rank = _variant_rank(w.architecture, w.variant, c.variant)
    if rank is None:
        if explicit:
            return False, 0
        # No variant asked for: anything of this arch, but prefer the default variant.
        return True, 100
    return True, rank


def _as_platform(p: Platform | str) -> Platform:
    return parse_platform(p) if isinstance(p, str) else p


def select_manifest(index: Any, wanted: Platform | str) -> Descriptor:
    """The best entry of `index` (an Index or a sequence of Descriptors) for `wanted`."""
    want = _as_platform(wanted)
    entries: Sequence[Descriptor] = getattr(index, "manifests", index)
    best: tuple[int, int, Descriptor] | None = None
    wn = want.normalized()
    for pos, desc in enumerate(entries):
        if desc.platform is None:
            continue
        ok, rank = _match_rank(wn, desc.platform.normalized(), explicit=bool(want.variant))
        if ok and (best is None or (rank, pos) < best[:2]):
            best = (rank, pos, desc)
    if best is None:
        available = ", ".join(_names(entries)) or "none"
        raise NotFound(f"no image for platform {want} in the index (available: {available})")
    return best[2]


def _names(entries: Iterable[Descriptor]) -> list[str]:
    out: list[str] = []
    for d in entries:
        if d.platform is not None and d.platform.os != "unknown":
            name = str(d.platform)
            if name not in out:
                out.append(name)
    return out

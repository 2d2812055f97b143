"""The CNI result cache: what ADD returned, kept for DEL and CHECK.

One file per attachment (network, container, interface) under the run root,
holding the exact config sent, the final result and the invocation's
arguments, so DEL still works after a crash, a reboot of the engine, or the
network's config being edited or removed meanwhile.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_KIND = "portside-cni-cache-v1"


@dataclass
class CacheEntry:
    network: str
    container_id: str
    ifname: str
    netns: str
    config: dict[str, Any]  # the conflist, as given to ADD
    result: dict[str, Any]
    args: dict[str, str]
    runtime_config: dict[str, Any]
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": CACHE_KIND,
            "network": self.network,
            "containerId": self.container_id,
            "ifName": self.ifname,
            "netns": self.netns,
            "config": self.config,
            "result": self.result,
            "args": self.args,
            "runtimeConfig": self.runtime_config,
        }


def _file(cache_dir: Path, network: str, container_id: str, ifname: str) -> Path:
    return Path(cache_dir) / "results" / f"{network}-{container_id}-{ifname}.json"


def save(cache_dir: Path, entry: CacheEntry) -> Path:
    """Atomically (temp + rename), so a crash leaves the old entry or the new one."""
    path = _file(cache_dir, entry.network, entry.container_id, entry.ifname)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(entry.to_json()))
    os.rename(tmp, path)
    entry.path = path
    return path


def _parse(path: Path) -> CacheEntry | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("kind") != CACHE_KIND:
        return None
    try:
        return CacheEntry(
            network=str(doc["network"]),
            container_id=str(doc["containerId"]),
            ifname=str(doc["ifName"]),
            netns=str(doc.get("netns", "")),
            config=dict(doc["config"]),
            result=dict(doc.get("result") or {}),
            args=dict(doc.get("args") or {}),
            runtime_config=dict(doc.get("runtimeConfig") or {}),
            path=path,
        )
    except (KeyError, TypeError, ValueError):
        return None


def load(cache_dir: Path, network: str, container_id: str, ifname: str) -> CacheEntry | None:
    return _parse(_file(cache_dir, network, container_id, ifname))


def remove(cache_dir: Path, network: str, container_id: str, ifname: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _file(cache_dir, network, container_id, ifname).unlink()


def entries(cache_dir: Path, container_id: str | None = None) -> list[CacheEntry]:
    """Every readable entry (of one container, if given), oldest first."""
    d = Path(cache_dir) / "results"
    pattern = f"*-{glob.escape(container_id)}-*.json" if container_id else "*.json"
    found: list[tuple[int, Path]] = []
    for p in d.glob(pattern):  # a missing dir globs to nothing
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another DEL
            found.append((p.stat().st_mtime_ns, p))
    out: list[CacheEntry] = []
    for _, p in sorted(found):
        e = _parse(p)
        if e is not None and (container_id is None or e.container_id == container_id):
            out.append(e)
    return out

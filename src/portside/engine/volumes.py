"""Named volumes (ROOT/volumes/NAME/_data), bind mounts and tmpfs mounts.

A named volume is filled from the image's content at its mount point the
first time a container uses it, as docker does, so `-v data:/var/lib/x`
starts with what the image shipped there.
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside.engine.state import StateDB
from portside.errors import InUse, InvalidArgument, NotFound, StorageError

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_BIND_OPTS = {"ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate"}


@dataclass
class MountRequest:
    """One mount the user (or the image's VOLUME) asked for, before resolution."""

    kind: str  # bind | volume | tmpfs
    destination: str
    source: str = ""  # host path, volume name ("" = anonymous)
    readonly: bool = False
    options: list[str] = field(default_factory=list)
    anonymous: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _check_dest(dest: str, what: str) -> str:
    if not dest.startswith("/"):
        raise InvalidArgument(f"{what}: container path {dest!r} must be absolute")
    return os.path.normpath(dest)


def parse_volume(spec: str) -> MountRequest:
    """-v SRC:DST[:OPTS] or -v DST (an anonymous volume)."""
    parts = spec.split(":")
    if len(parts) == 1:
        return MountRequest("volume", _check_dest(parts[0], f"-v {spec}"), anonymous=True)
    if len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification {spec!r}")
    src, dest = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 and parts[2] else []
    bad = [o for o in opts if o not in _BIND_OPTS]
    if bad:
        raise InvalidArgument(f"-v {spec}: unknown option {bad[0]!r}")
    ro = "ro" in opts
    dest = _check_dest(dest, f"-v {spec}")
    if src.startswith("/") or src.startswith("."):
        return MountRequest(
            "bind",
            dest,
            os.path.abspath(src),
            ro,
            [o for o in opts if "shared" in o or "slave" in o or "private" in o],
        )
    if not _NAME.fullmatch(src):
        raise InvalidArgument(f"-v {spec}: {src!r} is neither an absolute path nor a volume name")
    return MountRequest("volume", dest, src, ro)


def parse_mount(spec: str) -> MountRequest:
    """--mount type=bind|volume|tmpfs,source=..,target=..[,readonly][,tmpfs-size=..]."""
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, eq, value = item.partition("=")
        fields[key.strip().lower()] = value if eq else "true"
    kind = fields.pop("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"--mount {spec}: type {kind!r} is not bind, volume or tmpfs")
    dest = fields.pop("target", None) or fields.pop("destination", None) or fields.pop("dst", None)
    if not dest:
        raise InvalidArgument(f"--mount {spec}: target is missing")
    dest = _check_dest(dest, f"--mount {spec}")
    src = fields.pop("source", None) or fields.pop("src", None) or ""
    ro = fields.pop("readonly", fields.pop("ro", "false")) in ("true", "1", "")
    if kind == "tmpfs":
        opts = []
        if "tmpfs-size" in fields:
            opts.append(f"size={fields.pop('tmpfs-size')}")
        if "tmpfs-mode" in fields:
            opts.append(f"mode={fields.pop('tmpfs-mode')}")
        return MountRequest("tmpfs", dest, "", ro, opts)
    if kind == "bind":
        if not src:
            raise InvalidArgument(f"--mount {spec}: a bind mount needs a source")
        return MountRequest("bind", dest, os.path.abspath(src), ro)
    if src and not _NAME.fullmatch(src):
        raise InvalidArgument(f"--mount {spec}: invalid volume name {src!r}")
    return MountRequest("volume", dest, src, ro, anonymous=not src)


def parse_tmpfs(spec: str) -> MountRequest:
    """--tmpfs DST[:OPTS]."""
    dest, _, opts = spec.partition(":")
    return MountRequest(
        "tmpfs", _check_dest(dest, f"--tmpfs {spec}"), options=[o for o in opts.split(",") if o]
    )


class Volumes:
    """The volume store."""

    def __init__(self, root: Path, db: StateDB) -> None:
        self.dir = root / "volumes"
        self.db = db

    def path(self, name: str) -> Path:
        return self.dir / name / "_data"

    def create(
        self,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        anonymous: bool = False,
        driver: str = "local",
        options: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if driver != "local":
            raise InvalidArgument(f"volume driver {driver!r}: only local is available")
        name = name or uuid.uuid4().hex + uuid.uuid4().hex[:32]
        if not _NAME.fullmatch(name):
            raise InvalidArgument(f"invalid volume name {name!r}")
        doc = {
            "Name": name,
            "Driver": "local",
            "Mountpoint": str(self.path(name)),
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "Labels": labels or {},
            "Options": options or {},
            "Scope": "local",
            "Anonymous": anonymous,
            "NeedsCopyUp": True,
        }
        self.path(name).mkdir(parents=True, exist_ok=True)
        if not self.db.add_volume(name, time.time(), doc):
            existing = self.db.volume(name)
            assert existing is not None
            return existing
        return doc

    def inspect(self, name: str) -> dict[str, Any]:
        doc = self.db.volume(name)
        if doc is None:
            raise NotFound(f"no such volume: {name}")
        return doc

    def list(self) -> builtins.list[dict[str, Any]]:
        return self.db.volumes()

    def users(self, name: str) -> builtins.list[str]:
        out = []
        for c in self.db.all():
            for m in c.get("mounts", []):
                if m.get("kind") == "volume" and m.get("source") == name:
                    out.append(c["name"])
        return out

    def remove(self, name: str, force: bool = False) -> None:
        self.inspect(name)
        users = self.users(name)
        if users and not force:
            raise InUse(f"volume {name} is being used by container(s) {', '.join(users)}")
        self.db.delete_volume(name)
        shutil.rmtree(self.dir / name, ignore_errors=True)

    def prune(self) -> builtins.list[str]:
        gone: builtins.list[str] = []
        for doc in self.list():
            if not self.users(doc["Name"]):
                self.remove(doc["Name"])
                gone.append(doc["Name"])
        return gone

    def copy_up(self, name: str, rootfs: Path, dest: str) -> None:
        """Fill an empty new volume from the image's content at `dest` (first use only)."""
        doc = self.inspect(name)
        if not doc.get("NeedsCopyUp"):
            return
        target = self.path(name)
        src = Path(os.path.realpath(rootfs / dest.lstrip("/")))
        if (
            str(src).startswith(os.path.realpath(rootfs) + "/")
            and src.is_dir()
            and not any(target.iterdir())
        ):
            proc = subprocess.run(
                ["cp", "-a", f"{src}/.", f"{target}/"], capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                raise StorageError(f"volume {name}: copy-up from the image failed: {proc.stderr}")
            st = src.stat()
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, st.st_mode & 0o7777)
        self.db.update_volume(name, NeedsCopyUp=False)


def spec_mount(req: MountRequest, volumes: Volumes) -> dict[str, Any]:
    """A runtime-spec mount for a resolved request."""
    if req.kind == "tmpfs":
        opts = ["nosuid", "nodev", *req.options]
        if not any(o.startswith("mode=") for o in opts):
            opts.append("mode=1777")
        if req.readonly:
            opts.append("ro")
        return {"destination": req.destination, "type": "tmpfs", "source": "tmpfs", "options": opts}
    if req.kind == "bind":
        if not os.path.exists(req.source):
            raise NotFound(f"bind mount source {req.source}: no such file or directory")
        source = req.source
    else:
        source = str(volumes.path(req.source))
    opts = ["rbind", "ro" if req.readonly else "rw", *(req.options or ["rprivate"])]
    return {"destination": req.destination, "type": "bind", "source": source, "options": opts}

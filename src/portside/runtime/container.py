"""A container's persisted state and its status, read back from the kernel.

State lives in `ROOT/ID/state.json` (written atomically, under a flock on
`ROOT/ID`), so every verb is a fresh process that finds the container again.
The status is never stored: it is derived from the init process (alive? the
same start time? a zombie?), the exec fifo (still there = created) and the
freezer, so it is right even after a crash.
"""

from __future__ import annotations

import fcntl
import posix
import time

from portside.errors import AlreadyExists, InvalidArgument, NotFound, RuntimeFailure
from portside.linux import pathops
from portside.linux.procfs import process_start_time
from portside.runtime import fastjson

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/portside-runtime"
OCI_VERSION = "1.3.0"
STATE_FILE = "state.json"
FIFO = "exec.fifo"

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


def validate_id(cid: str) -> None:
    ok = bool(cid) and cid not in (".", "..") and len(cid) <= 1024
    ok = ok and all(c.isalnum() or c in "_+-." for c in cid) and cid.isascii()
    if not ok:
        raise InvalidArgument(f"invalid id format: {cid}")


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Container:
    """One container under a runtime root."""

    def __init__(self, root: str, cid: str, data: dict[str, Any]) -> None:
        self.root = root
        self.id = cid
        self.data = data
        self._lock_fd: int | None = None
        self.manager: Any = None  # the cgroup manager, once made or restored
        # `run`: the sync pipe the init waits on for START (no exec fifo), see launcher
        self.start_channel: Any = None
        # `run` with nothing to do between create and start: the init went on past READY
        self.started = False

    # -- paths
    @property
    def dir(self) -> str:
        return pathops.join(self.root, self.id)

    @property
    def fifo(self) -> str:
        return pathops.join(self.dir, FIFO)

    @property
    def pid(self) -> int:
        return int(self.data.get("pid", 0))

    @property
    def bundle(self) -> str:
        return str(self.data.get("bundle", ""))

    @property
    def config(self) -> dict[str, Any]:
        cfg = self.data.get("config")
        return cfg if isinstance(cfg, dict) else {}

    # -- construction
    @classmethod
    def new(cls, root: str, cid: str) -> Container:
        """Reserve ROOT/ID; refuse a duplicate id before anything else is made."""
        validate_id(cid)
        pathops.makedirs(root, 0o700, exist_ok=True)
        path = pathops.join(root, cid)
        try:
            posix.mkdir(path, 0o711)
        except FileExistsError:
            if not cls._reclaim(path):
                raise AlreadyExists("container with given ID already exists") from None
        c = cls(root, cid, {"id": cid})
        c.lock()
        return c

    @staticmethod
    def _reclaim(path: str) -> bool:
        """A directory without state.json whose lock nobody holds is what a `create`
        killed midway leaves: take it over instead of refusing the id forever."""
        if pathops.exists(pathops.join(path, STATE_FILE)):
            return False
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a create is still running
        finally:
            posix.close(fd)
        for name in posix.listdir(path):
            posix.unlink(pathops.join(path, name))
        return True

    @classmethod
    def load(cls, root: str, cid: str) -> Container:
        validate_id(cid)
        try:
            with open(pathops.join(root, cid, STATE_FILE), "rb") as f:
                data = fastjson.loads(f.read())
        except FileNotFoundError:
            raise NotFound("container does not exist") from None
        except ValueError as e:
            raise RuntimeFailure(f"state of container {cid} is corrupt: {e}") from None
        return cls(root, cid, data)

    @classmethod
    def list(cls, root: str) -> list[Container]:
        out = []
        try:
            names = sorted(posix.listdir(root))
        except FileNotFoundError:
            return []
        for name in names:
            try:
                out.append(cls.load(root, name))
            except (NotFound, RuntimeFailure, InvalidArgument):
                continue
        return out

    @property
    def lock_fd(self) -> int:
        return -1 if self._lock_fd is None else self._lock_fd

    # -- persistence
    def lock(self) -> None:
        if self._lock_fd is None:
            fd = posix.open(self.dir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            posix.close(self._lock_fd)
            self._lock_fd = None

    def save(self) -> None:
        tmp = pathops.join(self.dir, f".{STATE_FILE}.tmp")
        with open(tmp, "w") as f:
            f.write(fastjson.dumps(self.data))  # dumps uses the C encoder; dump(f) does not
        posix.rename(tmp, pathops.join(self.dir, STATE_FILE))

    def remove_dir(self) -> None:
        d = self.dir
        try:
            for name in posix.listdir(d):
                posix.unlink(pathops.join(d, name))
            posix.rmdir(d)
        except FileNotFoundError:
            pass
        self.unlock()

    # -- status
    def alive(self) -> bool:
        pid = self.pid
        if pid <= 0:
            return False
        start = process_start_time(pid)
        return start is not None and start == self.data.get("pid_start")

    def status(self) -> str:
        if not self.alive():
            return STOPPED
        try:
            cg = self.cgroup()
            if cg is not None and cg.is_frozen():
                return PAUSED  # as runc: a frozen container is paused, created or not
        except Exception:
            pass
        if pathops.exists(self.fifo):
            return CREATED
        return RUNNING

    def cgroup(self) -> Any:
        if self.manager is not None:
            return self.manager
        state = self.data.get("cgroup")
        if not state:
            return None
        from portside.runtime import cgroupctl

        self.manager = cgroupctl.load(state)
        return self.manager

    def oci_state(self) -> dict[str, Any]:
        status = self.status()
        out: dict[str, Any] = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != STOPPED else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.data.get("rootfs", ""),
            "created": self.data.get("created", ""),
            "owner": "",
        }
        if self.data.get("annotations"):
            out["annotations"] = self.data["annotations"]
        return out

    def hook_state(self, status: str) -> dict[str, Any]:
        """The state hooks get: the spec's fields only."""
        out: dict[str, Any] = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status,
            "pid": self.pid,
            "bundle": self.bundle,
        }
        if self.data.get("annotations"):
            out["annotations"] = self.data["annotations"]
        return out


def root_from_env(root: str | None) -> str:
    if root:
        return root
    xdg = pathops.getenv("XDG_RUNTIME_DIR")
    if posix.geteuid() != 0 and xdg:
        return pathops.join(xdg, "portside-runtime")
    return DEFAULT_ROOT

"""The engine on this machine: records in SQLite, a directory per container,
an overlay snapshot as its root filesystem, a monitor per running container.

Directories of container ID:
  ROOT/containers/ID/          hosts, resolv.conf, hostname, ctr.log (persistent)
  RUNROOT/c/ID[:12]/           the monitor's state dir (sockets, state.json, exit file)
  RUNROOT/c/ID[:12]/bundle/    config.json (root.path is the mounted snapshot)
  RUNROOT/runtime/NAME/        each runtime's own --root
  RUNROOT/locks/ID.lock        the container's flock
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import random
import shutil
import signal as _signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portside.config import paths as _paths
from portside.engine import containers as cs
from portside.engine.api import (
    ContainerInfo,
    ContainerState,
    CreateOptions,
    ExecOptions,
    LogOptions,
)
from portside.engine.locks import drop, locked
from portside.engine.runtime_client import (
    DEFAULT_RUNTIME,
    RuntimeClient,
    engine_settings,
    find_runtime,
)
from portside.engine.state import StateDB
from portside.errors import (
    AlreadyExists,
    CommandNotFound,
    CommandNotInvokable,
    InUse,
    InvalidArgument,
    NotFound,
    PortsideError,
    RuntimeFailure,
)

if TYPE_CHECKING:
    from portside.engine.networking import EngineNetworking
    from portside.engine.volumes import Volumes
    from portside.images.store import ImageStore
    from portside.monitor.client import MonitorHandle
    from portside.storage.layers import LayerStore


def _words(text: str) -> list[str]:
    return text.split()


_ADJ = _words(
    "brave calm eager fancy gentle happy jolly keen lucid mellow nifty proud quirky rapid sharp"
    " tidy vivid witty zesty bold"
)
_NOUN = _words(
    "otter falcon lynx heron badger marten puffin gecko bison ibis koala lemur newt orca panda"
    " quokka raven seal tapir wren"
)


class LocalEngine:
    """Containers (and the images they use) of one root and run root."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        runroot: str | os.PathLike[str] | None = None,
        config: str | None = None,
    ) -> None:
        p = _paths(root, str(runroot) if runroot else None)
        self.root = p.root
        self.runroot = p.runroot
        self.config_path = config
        self._settings: dict[str, Any] | None = None
        self._db: StateDB | None = None
        self._images: ImageStore | None = None
        self._layers: LayerStore | None = None
        self._volumes: Volumes | None = None
        # given, close() hands it the deletion of removed containers' dirs to run later
        # (the warm CLI runs it after the caller has its exit status); else close() does it
        self.defer: Callable[[Callable[[], None]], None] | None = None
        self._network: EngineNetworking | None = None

    # -- parts, opened on first use

    @property
    def settings(self) -> dict[str, Any]:
        if self._settings is None:
            self._settings = engine_settings(self.config_path)
        return self._settings

    @property
    def db(self) -> StateDB:
        if self._db is None:
            self._db = StateDB(self.root / "portside.db")
        return self._db

    @property
    def images(self) -> ImageStore:
        if self._images is None:
            from portside.images.store import ImageStore

            self._images = ImageStore(self.root)
            register_image_users(self.root)
        return self._images

    @property
    def layers(self) -> LayerStore:
        if self._layers is None:
            from portside.storage.layers import LayerStore

            self._layers = LayerStore(self.root, self.settings.get("storage_driver"), recover=True)
        return self._layers

    @property
    def volumes(self) -> Volumes:
        if self._volumes is None:
            from portside.engine.volumes import Volumes

            self._volumes = Volumes(self.root, self.db)
        return self._volumes

    @property
    def network(self) -> EngineNetworking:
        if self._network is None:
            from portside.engine.networking import EngineNetworking

            self._network = EngineNetworking(self.root, self.runroot, self.settings)
        return self._network

    def close(self) -> None:
        if self._layers is not None and self.defer is not None:
            # what rm set aside (dirs renamed away) is deleted once the caller has its answer
            self.defer(self._layers.take_trash())
        # the state DB last: the last connection to portside.db to close decides whether
        # SQLite checkpoints (and fsyncs) it, and only ours is set to skip that
        for part in (self._images, self._layers, self._db):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()

    # -- paths

    def ctr_dir(self, cid: str) -> Path:
        return self.root / "containers" / cid

    def run_dir(self, cid: str) -> Path:
        return self.runroot / "c" / cid[:12]

    def bundle(self, cid: str) -> Path:
        return self.run_dir(cid) / "bundle"

    @property
    def lock_dir(self) -> Path:
        return self.runroot / "locks"

    def runtime_for(self, name_or_path: str | None) -> RuntimeClient:
        name = name_or_path or str(self.settings.get("runtime") or DEFAULT_RUNTIME)
        path = find_runtime(name)
        return RuntimeClient(path, self.runroot / "runtime" / os.path.basename(path))

    # -- lookups

    def resolve(self, ref: str) -> str:
        return self.db.resolve(ref)

    def record(self, ref: str) -> dict[str, Any]:
        cid = self.resolve(ref)
        doc = self.db.get(cid)
        if doc is None:
            raise NotFound(f"no such container: {ref}")
        return doc

    def _observe(self, doc: dict[str, Any]) -> cs.Observed | None:
        if doc.get("status") != cs.STARTED:
            return None
        return cs.Observed(self.run_dir(doc["id"]), doc["id"])

    def state_of(self, doc: dict[str, Any]) -> ContainerState:
        return cs.derive_state(doc, self._observe(doc))

    def info(self, doc: dict[str, Any]) -> ContainerInfo:
        return ContainerInfo(
            id=doc["id"],
            name=doc["name"],
            image=doc["image"],
            image_id=doc["image_id"],
            command=list(doc["command"]),
            created=float(doc["created"]),
            state=self.state_of(doc),
            labels=dict(doc.get("labels") or {}),
            config=doc,
        )

    def inspect(self, ref: str) -> ContainerInfo:
        return self.info(self.record(ref))

    def list(self, all: bool = False) -> builtins.list[ContainerInfo]:
        self.reconcile()
        out = []
        for doc in self.db.all():
            info = self.info(doc)
            if all or info.state.running:
                out.append(info)
        return out

    # -- create

    def _name(self) -> str:
        taken = {d["name"] for d in self.db.all()}
        for _ in range(100):
            name = f"{random.choice(_ADJ)}_{random.choice(_NOUN)}"
            if name not in taken:
                return name
        return "c_" + uuid.uuid4().hex[:12]

    def ensure_image(self, text: str, policy: str = "missing") -> Any:
        if policy in ("missing", "never"):
            found = self.images.lookup(text)  # the common case, without the registry stack
            if found is not None:
                return found
        from portside.images.pull import ensure_image

        return ensure_image(self.images, text, policy)

    def _unpack(self, rec: Any) -> str:
        """Unpack the image's layers once (shared by every container); its top chain ID."""
        from portside.oci.digest import Digest
        from portside.storage.layers import _chain

        cfg = self.images.config(rec)
        diff_ids = [Digest.parse(d) for d in (cfg.get("rootfs") or {}).get("diff_ids") or []]
        if not diff_ids:
            raise InvalidArgument(f"image {rec.short_id} has no layers")
        top: Digest | None = None
        for d in diff_ids:
            top = _chain(top, d)
        assert top is not None
        if self.layers.get(str(top)) is None:
            descs = self.images.layers(rec)
            if len(descs) != len(diff_ids):
                raise InvalidArgument(f"image {rec.short_id}: layers and diff IDs differ in number")
            content = self.images.content
            self.layers.unpack_chain(
                [
                    (str(d), content.blob_path(desc["digest"]))
                    for d, desc in zip(diff_ids, descs, strict=False)
                ]
            )
        return str(top)

    def create(self, opts: CreateOptions) -> ContainerInfo:
        from portside.engine import specgen
        from portside.engine.volumes import parse_mount, parse_tmpfs, parse_volume

        rec = self.ensure_image(opts.image, opts.pull)
        image_doc = self.images.config(rec)
        image_cfg = dict(image_doc.get("config") or {})
        command = specgen.command_of(image_cfg, opts)
        requests = [parse_volume(v) for v in opts.volumes]
        requests += [parse_mount(m) for m in opts.mounts]
        requests += [parse_tmpfs(t) for t in opts.tmpfs]
        taken = {r.destination for r in requests}
        from portside.engine.volumes import MountRequest

        for vol in sorted(image_cfg.get("Volumes") or {}):
            if os.path.normpath(vol) not in taken:
                requests.append(MountRequest("volume", os.path.normpath(vol), anonymous=True))
        runtime = self.runtime_for(opts.runtime)
        if opts.restart:
            from portside.monitor.config import RestartPolicy

            RestartPolicy.parse(opts.restart)  # one line now rather than at start
            if opts.remove and opts.restart != "no":
                raise InvalidArgument("the --rm option conflicts with --restart")
        health = specgen.healthcheck_of(image_cfg, opts)
        stop_signal = specgen.parse_signal(
            opts.stop_signal or image_cfg.get("StopSignal") or "TERM"
        )
        log_driver = opts.log_driver or str(self.settings.get("log_driver") or "k8s-file")
        if log_driver == "journald":
            raise InvalidArgument("log driver journald is not available here")
        if log_driver not in ("k8s-file", "json-file", "none"):
            raise InvalidArgument(f"log driver {log_driver!r}: use k8s-file, json-file or none")
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        name = opts.name or self._name()
        if opts.name is not None:
            import re

            if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
                raise InvalidArgument(f"invalid container name {name!r}")
        labels = {**(image_cfg.get("Labels") or {}), **opts.labels}
        exposed = sorted((image_cfg.get("ExposedPorts") or {}).keys())
        if not opts.network:
            from dataclasses import replace

            from portside.engine.networking import default_network

            opts = replace(opts, network=default_network(self.settings))
        net_plan = self.network.plan(opts, cid, exposed, self.record)
        now = time.time()
        doc: dict[str, Any] = {
            "id": cid,
            "name": name,
            "image": opts.image,
            "image_id": rec.id,
            "image_names": list(rec.names),
            "created": now,
            "command": command,
            "options": asdict(opts),
            "runtime": runtime.path,
            "snapshot": f"container-{cid}",
            "status": cs.CREATED,
            "labels": labels,
            "health": health,
            "stop_signal": stop_signal,
            "stop_timeout": 10 if opts.stop_timeout is None else opts.stop_timeout,
            "log_driver": log_driver,
            "log_path": str(self.ctr_dir(cid) / "ctr.log"),
            "hostname": opts.hostname or cid[:12],
            "mounts": [],
            "exposed_ports": exposed,
            "net": net_plan,
        }
        for attempt in range(20):
            try:
                self.db.add(cid, name, now, doc)
                break
            except AlreadyExists:
                if opts.name is not None or attempt == 19:
                    raise
                name = doc["name"] = self._name()  # a racing create drew the same name
        try:
            with locked(self.lock_dir, cid):
                chain = self._unpack(rec)
                self.layers.prepare(doc["snapshot"], chain)
                # a --rm snapshot is thrown away: a volatile overlay skips the sync on umount
                rootfs = self.layers.mount(doc["snapshot"], volatile=opts.remove)
                mounts = []
                for req in requests:
                    if req.kind == "volume":
                        vol = self.volumes.create(req.source or None, anonymous=req.anonymous)
                        req.source = vol["Name"]
                        self.volumes.copy_up(req.source, rootfs, req.destination)
                    from portside.engine.volumes import spec_mount

                    mounts.append(spec_mount(req, self.volumes))
                doc["mounts"] = [r.to_json() for r in requests]
                init = self._init_binary() if opts.init else None
                spec = specgen.generate(
                    image_cfg,
                    opts,
                    cid=cid,
                    rootfs=rootfs,
                    userdata=self.ctr_dir(cid),
                    extra_mounts=mounts,
                    init_binary=init,
                    cache_dir=self.runroot / "cache",
                    netns_path=net_plan["netns"] or None,
                    host_network=net_plan["mode"] == "host",
                )
                specgen.write_etc_files(self.ctr_dir(cid), spec["hostname"], opts.network)
                self._write_bundle(cid, spec)
                doc["rootfs"] = str(rootfs)
                doc["spec_summary"] = {
                    "user": spec["process"]["user"],
                    "env": spec["process"]["env"],
                    "cwd": spec["process"]["cwd"],
                    "tty": opts.tty,
                }
                self.db.update(cid, **doc)
        except BaseException:
            with contextlib.suppress(Exception):
                self._destroy(cid, doc, volumes=True)
            raise
        return self.info(doc)

    def _write_bundle(self, cid: str, spec: dict[str, Any]) -> None:
        bundle = self.bundle(cid)
        bundle.mkdir(parents=True, exist_ok=True)
        tmp = bundle / ".config.json.tmp"
        tmp.write_text(json.dumps(spec))  # compact: the C encoder, ~10x the indented one
        os.replace(tmp, bundle / "config.json")

    def _init_binary(self) -> str:
        from portside.engine.init import ensure_init

        return ensure_init(self.root)

    # -- start

    def _monitor_config(self, doc: dict[str, Any], *, stdin: bool, defer: bool) -> dict[str, Any]:
        cid = doc["id"]
        opts = doc["options"]
        runtime = self.runtime_for(doc["runtime"])
        log_opts = opts.get("log_opts") or {}
        from portside.engine.specgen import parse_bytes

        cfg: dict[str, Any] = {
            "version": 1,
            "id": cid,
            "bundle": str(self.bundle(cid)),
            "runtime": runtime.path,
            "runtime_args": runtime.global_args,
            "state_dir": str(self.run_dir(cid)),
            "log": {
                "driver": doc["log_driver"],
                "path": doc["log_path"],
                "max_size": parse_bytes(log_opts["max-size"], "max-size")
                if log_opts.get("max-size")
                else 0,
                "max_file": int(log_opts.get("max-file", 1)),
            },
            "terminal": bool(opts.get("tty")),
            "stdin": stdin,
            "stdin_once": stdin and not opts.get("tty"),
            "defer_start": defer,
            "restart": opts.get("restart") or "no",
        }
        if doc.get("health"):
            cfg["healthcheck"] = doc["health"]
        if not defer:  # an attached client cleans up itself (no process spawned per run)
            import sys

            exe = Path(sys.executable).parent / "portside"
            if exe.exists():
                cfg["exit_command"] = [
                    str(exe),
                    "--root",
                    str(self.root),
                    "--runroot",
                    str(self.runroot),
                    "container",
                    "cleanup",
                    *(["--rm"] if opts.get("remove") else []),
                    cid,
                ]
        return cfg

    def start(self, ref: str, *, attach: bool = False, stdin: bool = False) -> MonitorHandle:
        """Start (or restart) the container under its monitor; with `attach` the monitor only
        creates it, so the caller can attach and then call `MonitorHandle.start()`."""
        from portside.monitor.client import spawn

        cid = self.resolve(ref)
        with locked(self.lock_dir, cid):
            doc = self.db.get(cid)
            if doc is None:
                raise NotFound(f"no such container: {ref}")
            if doc.get("status") == cs.REMOVING:
                raise InvalidArgument(f"container {doc['name']} is being removed (rm -f it)")
            state = self.state_of(doc)
            if state.running:
                raise InvalidArgument(f"container {doc['name']} is already running")
            if doc.get("status") == cs.STARTED:
                self._record_exit(doc, state)
            rootfs = doc["rootfs"]
            if not cs.is_mounted(rootfs):
                self.layers.mount(doc["snapshot"], volatile=bool(doc["options"].get("remove")))
            self._clear_run_dir(cid)
            runtime = self.runtime_for(doc["runtime"])
            if runtime.has_state(cid):
                runtime.delete(cid)
            config = self._monitor_config(
                doc, stdin=stdin or bool(doc["options"].get("interactive")), defer=attach
            )
            self.network.down(doc)  # what an earlier run left (an exit not cleaned up)
            # attached, the CNI ADD runs while the monitor starts and the runtime creates
            token = uuid.uuid4().hex
            net_up = self.network.begin_up(doc, self.ctr_dir(cid), self.record, token, attach)
            by_monitor = bool(net_up.status.get("cni")) and "exit_command" not in config
            if by_monitor:
                # attached: the monitor takes the network down at exit, while `run` finishes
                config["exit_command"] = self.network.down_command(doc, token)
            try:
                handle = spawn(config, zygote_dir=self.runroot)
            except BaseException as err:
                with contextlib.suppress(PortsideError, OSError):
                    net_up.wait()
                with contextlib.suppress(PortsideError, OSError):
                    self.network.down(doc)
                if not isinstance(err, RuntimeFailure):
                    raise
                self.db.update(
                    cid,
                    status=cs.EXITED,
                    last_exit={"exit_code": _exit_code_for(str(err)), "error": str(err)},
                )
                raise _classify(err) from None
            try:
                net_status = net_up.wait()
            except BaseException:
                with contextlib.suppress(PortsideError, OSError, TimeoutError):
                    handle.stop(9, 0)
                    handle.wait(timeout=30)
                raise
            self.db.update(
                cid,
                net_status={**net_status, "by_monitor": by_monitor},
                status=cs.STARTED,
                paused=False,
                started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            )
            return handle

    def _clear_run_dir(self, cid: str) -> None:
        run = self.run_dir(cid)
        if not run.exists():
            return
        for entry in run.iterdir():
            if entry.name == "bundle":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()

    def _record_exit(self, doc: dict[str, Any], state: ContainerState) -> None:
        """Move what the monitor recorded into the record (before its files are cleared)."""
        self.db.update(
            doc["id"],
            status=cs.EXITED,
            last_exit={
                "exit_code": state.exit_code,
                "oom_killed": state.oom_killed,
                "finished_at": state.finished_at,
                "error": state.error,
                "restart_count": state.restart_count,
            },
            started_at=state.started_at,
        )

    def handle(self, ref: str) -> MonitorHandle:
        from portside.monitor.client import MonitorHandle

        doc = self.record(ref)
        path = self.run_dir(doc["id"]) / "monitor.json"
        if doc.get("status") != cs.STARTED or not path.exists():
            raise InvalidArgument(f"container {doc['name']} is not running")
        return MonitorHandle.load(path)

    # -- stop, kill, wait

    def stop(self, ref: str, timeout: float | None = None) -> None:
        doc = self.record(ref)
        state = self.state_of(doc)
        if not state.running:
            return
        t = float(doc.get("stop_timeout", 10) if timeout is None else timeout)
        handle = self.handle(doc["id"])
        if state.paused:
            self.unpause(doc["id"])
        handle.stop(int(doc.get("stop_signal") or 15), t)
        handle.wait(timeout=t + 60)
        self.cleanup(doc["id"])  # its network down (and unmounted) when stop returns, as podman

    def kill(self, ref: str, signal: str | int = "KILL") -> None:
        from portside.engine.specgen import parse_signal

        doc = self.record(ref)
        state = self.state_of(doc)
        if not state.running:
            raise InvalidArgument(f"container {doc['name']} is not running")
        if state.paused:
            raise InvalidArgument(
                f"container {doc['name']} is paused: unpause it before stopping or killing it"
            )
        sig = parse_signal(signal)
        self.runtime_for(doc["runtime"]).kill(doc["id"], sig)

    def wait(self, ref: str, timeout: float | None = None) -> int:
        doc = self.record(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state_of(doc)
            if not state.running and state.status != cs.CREATED:
                return state.exit_code
            if state.status == cs.CREATED and doc.get("status") == cs.CREATED:
                time.sleep(0.1)  # docker's wait blocks on a created container too
            else:
                time.sleep(0.05)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"container {doc['name']} still running")
            fresh = self.db.get(doc["id"])
            if fresh is None:
                return state.exit_code
            doc = fresh

    def pause(self, ref: str) -> None:
        doc = self.record(ref)
        if self.state_of(doc).status != "running":
            raise InvalidArgument(f"container {doc['name']} is not running")
        self.runtime_for(doc["runtime"]).pause(doc["id"])
        self.db.update(doc["id"], paused=True)

    def unpause(self, ref: str) -> None:
        doc = self.record(ref)
        if not self.state_of(doc).paused:
            raise InvalidArgument(f"container {doc['name']} is not paused")
        self.runtime_for(doc["runtime"]).resume(doc["id"])
        self.db.update(doc["id"], paused=False)

    def restart(self, ref: str, timeout: float | None = None) -> None:
        self.stop(ref, timeout)
        self.start(ref)

    # -- remove

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> str:
        cid = self.resolve(ref)
        with locked(self.lock_dir, cid):
            doc = self.db.get(cid)
            if doc is None:
                raise NotFound(f"no such container: {ref}")
            state = self.state_of(doc)
            if state.running and not force:
                raise InUse(
                    f"cannot remove container {doc['name']}: it is running "
                    "(stop it first, or use -f)"
                )
            self._destroy(cid, doc, volumes=volumes or bool(doc["options"].get("remove")))
        drop(self.lock_dir, cid)
        return cid

    def _destroy(self, cid: str, doc: dict[str, Any], volumes: bool) -> None:
        """Kill what runs; remove monitor, runtime state, mounts, snapshot, dirs, record."""
        seen = cs.Observed(self.run_dir(cid), cid)
        with contextlib.suppress(NotFound):  # readers see "removing", not a dead monitor
            self.db.update(cid, status=cs.REMOVING)
        if seen.monitor_alive and seen.exit is None:
            from portside.monitor.client import MonitorHandle

            if doc.get("paused"):  # a frozen init would not see the SIGKILL
                with contextlib.suppress(PortsideError):
                    self.runtime_for(doc["runtime"]).resume(cid)

            try:
                handle = MonitorHandle.load(self.run_dir(cid) / "monitor.json")
                handle.stop(9, 0)
                handle.wait(timeout=30)
            except (PortsideError, TimeoutError, OSError):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(seen.monitor_pid, _signal.SIGKILL)
        with contextlib.suppress(PortsideError):
            runtime = self.runtime_for(doc["runtime"])
            if runtime.has_state(cid):
                with contextlib.suppress(PortsideError):
                    runtime.kill(cid, 9)
                runtime.delete(cid)
        with contextlib.suppress(PortsideError, OSError):
            self.network.release(doc, cs.Observed(self.run_dir(cid), cid).exit is not None)
        with contextlib.suppress(NotFound):
            self.layers.remove_snapshot(doc["snapshot"])
        for directory in (self.run_dir(cid), self.ctr_dir(cid)):
            try:  # gone from sight now; the deletion itself after the reply (see close)
                self.layers.discard(directory)
            except OSError:
                shutil.rmtree(directory, ignore_errors=True)
        self.db.delete(cid)
        if volumes:
            for m in doc.get("mounts") or []:
                if m.get("kind") == "volume" and m.get("anonymous") and m.get("source"):
                    with contextlib.suppress(PortsideError):
                        self.volumes.remove(m["source"])

    def cleanup(self, ref: str, remove: bool = False) -> None:
        """The monitor's exit command: note the exit, unmount, and with --rm remove it all."""
        try:
            doc = self.record(ref)
        except NotFound:
            return
        if remove:
            with contextlib.suppress(NotFound, InUse):
                self.remove(doc["id"], volumes=True)
            return
        with locked(self.lock_dir, doc["id"]):
            fresh = self.db.get(doc["id"])  # a start may have come in between
            if fresh is None:
                return
            state = self.state_of(fresh)
            if not state.running and fresh.get("net_status") is not None:
                with contextlib.suppress(PortsideError, OSError):
                    if self.network.release(fresh, exited=True):
                        self.db.update(fresh["id"], net_status=None)
            if not state.running and cs.is_mounted(fresh["rootfs"]):
                with contextlib.suppress(PortsideError):
                    self.layers.unmount(doc["snapshot"])

    def prune(self) -> builtins.list[str]:
        gone = []
        for info in self.list(all=True):
            if not info.state.running:
                with contextlib.suppress(InUse, NotFound):
                    gone.append(self.remove(info.id))
        return gone

    def rename(self, ref: str, name: str) -> None:
        import re

        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
            raise InvalidArgument(f"invalid container name {name!r}")
        self.db.rename(self.resolve(ref), name)

    def reconcile(self) -> builtins.list[str]:
        """Start-up check against reality: a started container whose monitor died without an
        exit file is killed (its init may linger) and recorded exited."""
        fixed = []
        for doc in self.db.all():
            if doc.get("status") != cs.STARTED:
                continue
            seen = cs.Observed(self.run_dir(doc["id"]), doc["id"])
            if seen.exit is not None or seen.monitor_alive:
                continue
            with locked(self.lock_dir, doc["id"]):
                # look again under the lock: an rm or a start may have come in between
                fresh = self.db.get(doc["id"])
                if fresh is None or fresh.get("status") != cs.STARTED:
                    continue
                seen = cs.Observed(self.run_dir(doc["id"]), doc["id"])
                if seen.exit is not None or seen.monitor_alive:
                    continue
                with contextlib.suppress(PortsideError):
                    rt = self.runtime_for(fresh["runtime"])
                    with contextlib.suppress(PortsideError):
                        rt.kill(doc["id"], 9)
                    rt.delete(doc["id"])
                with contextlib.suppress(NotFound):
                    self._record_exit(fresh, self.state_of(fresh))
                with contextlib.suppress(PortsideError, OSError):
                    self.network.down(fresh)
                    self.db.update(doc["id"], net_status=None)
            fixed.append(doc["id"])
        # namespaces, attachments, leases, rules of containers that no longer exist (a crash
        # in the middle of rm, a lost record): looked for cheaply, swept when there are any
        live = {d["id"] for d in self.db.all()}
        if self.network.stale(live):
            self.network.sweep(live)
        return fixed

    # -- logs

    def logs(self, ref: str, options: LogOptions) -> Iterator[tuple[str, str, bytes]]:
        """(time, stream, text) entries; with follow, until the container stops."""
        from portside.engine.logs import follow_log, read_entries

        doc = self.record(ref)
        driver = doc["log_driver"]
        if driver == "none":
            raise InvalidArgument(f"container {doc['name']} has log driver none: no logs")
        max_file = int((doc["options"].get("log_opts") or {}).get("max-file", 1))
        entries = read_entries(doc["log_path"], driver, max_file, options)
        yield from entries
        if options.follow:

            def running() -> bool:
                fresh = self.db.get(doc["id"])
                return fresh is not None and self.state_of(fresh).running

            yield from follow_log(doc["log_path"], driver, options, running)

    # -- exec, top, stats

    def exec(self, ref: str, options: ExecOptions) -> int:
        """Run a process in the container with our own stdio; its exit code."""
        return self._exec(ref, options, capture=False)[0]

    def exec_capture(self, ref: str, options: ExecOptions) -> tuple[int, bytes, bytes]:
        """Run a process in the container; (exit code, stdout, stderr)."""
        return self._exec(ref, options, capture=True)

    def _exec(self, ref: str, options: ExecOptions, capture: bool) -> tuple[int, bytes, bytes]:
        from portside.engine import specgen

        doc = self.record(ref)
        if self.state_of(doc).status != "running":
            raise InvalidArgument(f"container {doc['name']} is not running")
        config = json.loads((self.bundle(doc["id"]) / "config.json").read_text())
        process = dict(config["process"])
        process["args"] = list(options.command)
        process["terminal"] = options.tty
        process["env"] = specgen.merge_env(list(process.get("env") or []), options.env)
        if options.workdir:
            process["cwd"] = options.workdir
        if options.user:
            uid, gid, extra, _ = specgen.resolve_user(options.user, Path(doc["rootfs"]))
            process["user"] = {
                "uid": uid,
                "gid": gid,
                **({"additionalGids": extra} if extra else {}),
            }
        if options.privileged:
            caps = specgen.known_caps()
            process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        runtime = self.runtime_for(doc["runtime"])
        pfile = self.run_dir(doc["id"]) / f"exec-{uuid.uuid4().hex[:12]}.json"
        pfile.write_text(json.dumps(process))
        try:
            argv = runtime.argv("exec", "--process", str(pfile))
            if options.detach:
                argv.append("--detach")
            argv.append(doc["id"])
            stdin = None if options.interactive or options.tty else subprocess.DEVNULL
            proc = subprocess.run(
                argv,
                stdin=stdin,
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.PIPE,
                check=False,
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                pfile.unlink()
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0 and err.strip():
            from portside.engine.runtime_client import last_line

            line = last_line(err)
            code = _exit_code_for(line)
            if code in (126, 127):
                raise _classify(RuntimeFailure(line))
            if not capture:
                os.write(2, err.encode())
        return proc.returncode, proc.stdout or b"", proc.stderr or b""

    def top(self, ref: str, ps_args: builtins.list[str]) -> str:
        doc = self.record(ref)
        if not self.state_of(doc).running:
            raise InvalidArgument(f"container {doc['name']} is not running")
        pids = self.runtime_for(doc["runtime"]).ps(doc["id"])
        args = ps_args or ["-f"]
        out = subprocess.run(
            ["ps", *args, "-p", ",".join(str(p) for p in pids) or "0"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode not in (0, 1):
            raise InvalidArgument(f"ps {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def stats(self, ref: str) -> dict[str, Any]:
        from portside.engine.stats import cgroup_stats

        doc = self.record(ref)
        state = self.state_of(doc)
        base = {"id": doc["id"], "name": doc["name"]}
        if not state.running:
            return {**base, "cpu_ns": 0, "mem_usage": 0, "mem_limit": 0, "pids": 0}
        return {**base, **cgroup_stats(f"/portside/{doc['id']}")}

    def rootfs(self, ref: str) -> tuple[dict[str, Any], Path]:
        """The container's root filesystem, mounted (for cp)."""
        doc = self.record(ref)
        with locked(self.lock_dir, doc["id"]):
            if not cs.is_mounted(doc["rootfs"]):
                self.layers.mount(doc["snapshot"])
        return doc, Path(doc["rootfs"])


def _exit_code_for(message: str) -> int:
    """docker's rule: 127 when the command is not there, 126 when it cannot be run."""
    low = message.lower()
    if (
        "permission denied" in low
        or "is a directory" in low
        or "exec format error" in low
        or "open executable" in low  # crun's words for a command it cannot open
    ):
        return 126
    if (
        "executable file not found" in low
        or "no such file or directory" in low
        or "not found in $path" in low
    ):
        return 127
    return 125


def _classify(err: RuntimeFailure) -> PortsideError:
    code = _exit_code_for(str(err))
    if code == 127:
        return CommandNotFound(str(err))
    if code == 126:
        return CommandNotInvokable(str(err))
    return err


_REGISTERED: set[Path] = set()


def register_image_users(root: str | os.PathLike[str] | None = None) -> None:
    """Let `rmi` and image prune refuse an image a container still uses (docker's rule):
    registers an in-use check with the image store that looks up the container records."""
    from portside.images.store import register_in_use_check

    db_path = _paths(root).database
    if db_path in _REGISTERED:
        return
    _REGISTERED.add(db_path)

    def check(rec: Any) -> str | None:
        if not db_path.exists():
            return None
        db = StateDB(db_path)
        try:
            users = [d["name"] for d in db.all() if d.get("image_id") == rec.id]
        finally:
            db.close()
        return f"container(s) {', '.join(users)}" if users else None

    register_in_use_check(check)


if TYPE_CHECKING:  # the engine keeps to its protocol (checked by mypy)
    from portside.engine.api import ContainerEngine

    _conforms: type[ContainerEngine] = LocalEngine

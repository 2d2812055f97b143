"""RUN: one command in a real container over a build workspace.

The container's spec comes from the engine's own spec generator (the same
defaults `portside run` gets: namespaces, capabilities, seccomp, masked paths),
and it runs through the configured OCI runtime's `run` verb in the foreground,
as buildah does, so there is no monitor or container record to clean up: the
runtime removes its state and cgroup when the process exits, and a `delete
--force` in `finally` covers a runtime that died first.

Mount points the runtime had to create in the root (/proc, /dev, /sys in an
image that lacks them) are removed again when still empty, so they do not end
up in the step's layer; the ones buildah (and docker) leave behind, empty
/etc/hosts and /etc/resolv.conf and the /run of /run/.containerenv, stay, so
the layers hold the same files as theirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from portside.errors import BuildError

if TYPE_CHECKING:
    from portside.engine.local import LocalEngine


@dataclass
class RunRequest:
    """What one RUN needs: the command, the stage's config and its mounts."""

    argv: list[str]
    config: dict[str, Any]
    """The stage's image config so far (Env, User, WorkingDir, ...)."""
    env: list[str] = field(default_factory=list)
    """Extra environment (build ARGs), after the config's Env."""
    network: str = "host"
    runtime: str | None = None
    mounts: list[dict[str, Any]] = field(default_factory=list)
    script: str | None = None
    """A heredoc body with #!: written into the root and run as the first argv word."""


# created mount points that stay in the layer, as buildah leaves them (files get 0755)
LEFT_BEHIND = ("/etc/hosts", "/etc/resolv.conf", "/run")


def _exists(root: Path, dest: str) -> bool:
    from portside.runtime.rootfs import secure_join

    return os.path.lexists(secure_join(str(root), dest))


def _remove_if_empty(root: Path, dest: str) -> None:
    """Remove a mount point the runtime created, and its created parents, if empty."""
    from portside.runtime.rootfs import secure_join

    path = secure_join(str(root), dest)
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        elif os.path.isfile(path) and os.path.getsize(path) == 0:
            os.unlink(path)


def run_step(
    engine: LocalEngine,
    rootfs: Path,
    req: RunRequest,
    output: Callable[[bytes], None],
) -> int:
    """Run `req` in a container rooted at `rootfs`; relays its output; its exit code."""

    from portside.build.workspace import owned_name
    from portside.runtime.rootfs import secure_join

    cid = owned_name("build")
    work = engine.runroot / "build" / cid
    runtime = engine.runtime_for(req.runtime)
    script_path: str | None = None
    created: list[str] = []
    cwd = "/"
    try:
        argv = list(req.argv)
        if req.script is not None:
            script_path = f"/.portside-heredoc-{os.urandom(6).hex()}"
            host = secure_join(str(rootfs), script_path)
            with open(host, "w") as f:
                f.write(req.script)
            os.chmod(host, 0o755)
            argv = [script_path, *argv]
        spec = _spec(engine, rootfs, req, cid, argv, work / "userdata")
        cwd = spec["process"]["cwd"]
        created = _mount_points_to_make(rootfs, spec, req)
        os.makedirs(secure_join(str(rootfs), cwd), exist_ok=True)
        bundle = work / "bundle"
        bundle.mkdir(parents=True, exist_ok=True)
        (bundle / "config.json").write_text(json.dumps(spec))
        try:
            proc = subprocess.Popen(
                runtime.argv("run", "--bundle", str(bundle), cid),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as e:
            raise BuildError(f"running {runtime.name}: {e}") from None
        assert proc.stdout is not None
        try:
            _pump(proc.stdout, output)
        finally:
            code = proc.wait()
        return code
    finally:
        if runtime.has_state(cid):
            runtime.delete(cid)
        shutil.rmtree(work, ignore_errors=True)
        if script_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(secure_join(str(rootfs), script_path))
        # deepest first, so a created parent is empty by the time it is tried
        for dest in sorted(created, key=lambda d: d.count("/"), reverse=True):
            if dest == cwd:
                continue  # the working directory stays, as docker and buildah leave it
            if dest in LEFT_BEHIND:
                path = secure_join(str(rootfs), dest)
                if os.path.isfile(path) and not os.path.islink(path):
                    with contextlib.suppress(OSError):
                        os.chmod(path, 0o755)
                continue
            _remove_if_empty(rootfs, dest)


def _spec(
    engine: LocalEngine, rootfs: Path, req: RunRequest, cid: str, argv: list[str], userdata: Path
) -> dict[str, Any]:
    """The container's config.json, from the engine's spec generator (as `run` gets it)."""
    from portside.engine import specgen
    from portside.engine.api import CreateOptions

    opts = CreateOptions(
        image="",
        command=argv,
        entrypoint=[],
        env=list(req.env),
        network=req.network,
        hostname=cid[-12:],
    )
    cfg = dict(req.config)
    cfg.pop("Healthcheck", None)
    userdata.mkdir(parents=True, exist_ok=True)
    (userdata / "containerenv").write_text('engine="portside"\n')
    mounts = [
        *req.mounts,
        {
            "destination": "/run/.containerenv",
            "type": "bind",
            "source": str(userdata / "containerenv"),
            "options": ["bind", "ro", "nosuid", "nodev"],
        },
    ]
    spec = specgen.generate(
        cfg,
        opts,
        cid=cid,
        rootfs=rootfs,
        userdata=userdata,
        extra_mounts=mounts,
        cache_dir=engine.runroot / "cache",
    )
    specgen.write_etc_files(userdata, spec["hostname"], req.network)
    return spec


def _mount_points_to_make(rootfs: Path, spec: dict[str, Any], req: RunRequest) -> list[str]:
    """Mount points (and their parents) the runtime will have to create in the root; the
    parents of RUN --mount targets stay afterwards (buildah leaves them, e.g. /mnt of
    /mnt/ctx), so they are not listed."""
    dests = [m["destination"] for m in spec["mounts"]]
    user_dests = {m["destination"] for m in req.mounts}
    created: list[str] = []
    for d in [*dests, spec["process"]["cwd"]]:
        while d not in ("/", "") and d not in created and not _exists(rootfs, d):
            created.append(d)
            if d in user_dests:
                break
            d = os.path.dirname(d)
    return created


def _pump(stream: IO[bytes], output: Callable[[bytes], None]) -> None:
    fd = stream.fileno()
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        output(data)


def stdout_writer(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()

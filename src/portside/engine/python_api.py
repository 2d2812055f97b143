"""`portside.Engine`: the engine for Python programs, no CLI involved.

    import portside
    engine = portside.Engine(root="/var/lib/portside", runroot="/run/portside")
    result = engine.containers.run("localhost/busybox:latest", ["echo", "hi"], remove=True)
    assert result.stdout == b"hi\\n"

Objects returned are typed (dataclasses); errors are portside's own hierarchy.
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass, fields
from typing import Any

from portside.engine.api import ContainerInfo, CreateOptions, ExecOptions, LogOptions
from portside.engine.local import LocalEngine


@dataclass(frozen=True)
class Image:
    id: str
    names: list[str]
    digest: str
    size: int
    created: str | None


@dataclass(frozen=True)
class RunResult:
    """A finished container: its exit code and output (stdout and stderr apart)."""

    id: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    oom_killed: bool


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class Container:
    """A container as it was when asked; `refresh()` for the current state."""

    id: str
    name: str
    image: str
    status: str
    exit_code: int
    info: ContainerInfo

    @classmethod
    def of(cls, info: ContainerInfo) -> Container:
        return cls(info.id, info.name, info.image, info.state.status, info.state.exit_code, info)


def _options(image: str, command: list[str] | None, kw: dict[str, Any]) -> CreateOptions:
    known = {f.name for f in fields(CreateOptions)}
    bad = sorted(set(kw) - known)
    if bad:
        raise TypeError(f"unknown container option(s): {', '.join(bad)}")
    return CreateOptions(image=image, command=list(command) if command else None, **kw)


class Images:
    def __init__(self, engine: LocalEngine) -> None:
        self._e = engine

    @staticmethod
    def _image(rec: Any) -> Image:
        return Image(rec.id, list(rec.names), str(rec.manifest_digest), rec.size, rec.created)

    def pull(self, reference: str) -> Image:
        return self._image(self._e.ensure_image(reference, "always"))

    def get(self, reference: str) -> Image:
        return self._image(self._e.images.get(reference))

    def list(self) -> builtins.list[Image]:
        return [self._image(r) for r in self._e.images.images()]

    def remove(self, reference: str, force: bool = False) -> None:
        self._e.images.remove(reference, force=force)


class Containers:
    def __init__(self, engine: LocalEngine) -> None:
        self._e = engine

    def create(self, image: str, command: list[str] | None = None, **options: Any) -> Container:
        return Container.of(self._e.create(_options(image, command, options)))

    def start(self, ref: str) -> Container:
        self._e.start(ref)
        return self.get(ref)

    def run(
        self, image: str, command: list[str] | None = None, *, remove: bool = False, **options: Any
    ) -> RunResult:
        """Run to completion; the output is read from the container's log."""
        info = self._e.create(_options(image, command, options))
        try:
            handle = self._e.start(info.id)
            status = handle.wait()
            out, err = self._split_logs(info.id)
            return RunResult(info.id, status.exit_code, out, err, status.oom_killed)
        finally:
            if remove:
                self._e.remove(info.id, force=True, volumes=True)

    def run_detached(
        self, image: str, command: list[str] | None = None, **options: Any
    ) -> Container:
        info = self._e.create(_options(image, command, options))
        self._e.start(info.id)
        return self.get(info.id)

    def _split_logs(self, ref: str) -> tuple[bytes, bytes]:
        out: builtins.list[bytes] = []
        err: builtins.list[bytes] = []
        for _, stream, text in self._e.logs(ref, LogOptions()):
            (err if stream == "stderr" else out).append(text)
        return b"".join(out), b"".join(err)

    def logs(self, ref: str, *, tail: int | None = None, stream: str | None = None) -> bytes:
        """The log as bytes (both streams in order, or only "stdout"/"stderr")."""
        return b"".join(
            text
            for _, s, text in self._e.logs(ref, LogOptions(tail=tail))
            if stream is None or s == stream
        )

    def exec(self, ref: str, command: list[str], **options: Any) -> ExecResult:
        code, out, err = self._e.exec_capture(ref, ExecOptions(command=list(command), **options))
        return ExecResult(code, out, err)

    def stop(self, ref: str, timeout: float | None = None) -> None:
        self._e.stop(ref, timeout)

    def kill(self, ref: str, signal: str = "KILL") -> None:
        self._e.kill(ref, signal)

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self._e.remove(ref, force=force, volumes=volumes)

    def inspect(self, ref: str) -> ContainerInfo:
        return self._e.inspect(ref)

    def get(self, ref: str) -> Container:
        return Container.of(self._e.inspect(ref))

    def list(self, all: bool = False) -> builtins.list[Container]:
        return [Container.of(i) for i in self._e.list(all=all)]

    def wait(self, ref: str, timeout: float | None = None) -> int:
        return self._e.wait(ref, timeout)


class Engine:
    """Images and containers of one root and run root (/var/lib/portside, /run/portside)."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        runroot: str | os.PathLike[str] | None = None,
        config: str | None = None,
    ) -> None:
        self._engine = LocalEngine(root, runroot, config)
        self.images = Images(self._engine)
        self.containers = Containers(self._engine)

    def close(self) -> None:
        self._engine.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

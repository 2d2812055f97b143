"""The image configuration (OCI image config; the Docker container image config is a superset).

Docker writes many more fields (container_config, docker_version, Hostname, ...): they
stay in `extra` and survive a rewrite, so a modified Docker config is still Docker's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from portside.errors import InvalidDocument
from portside.oci._json import Document, JSONModel, jkey
from portside.oci.digest import Digest, chain_id
from portside.oci.platform import Platform

__all__ = ["ContainerConfig", "HealthConfig", "History", "ImageConfig", "RootFS"]


@dataclass(kw_only=True)
class HealthConfig(JSONModel):
    """Docker's Healthcheck (durations in nanoseconds)."""

    test: list[str] | None = field(default=None, metadata=jkey("Test", "strlist"))
    interval: int | None = field(default=None, metadata=jkey("Interval", "int"))
    timeout: int | None = field(default=None, metadata=jkey("Timeout", "int"))
    start_period: int | None = field(default=None, metadata=jkey("StartPeriod", "int"))
    start_interval: int | None = field(default=None, metadata=jkey("StartInterval", "int"))
    retries: int | None = field(default=None, metadata=jkey("Retries", "int"))


@dataclass(kw_only=True)
class ContainerConfig(JSONModel):
    """The `config` object: defaults for containers made from the image."""

    user: str | None = field(default=None, metadata=jkey("User", "str"))
    exposed_ports: dict[str, Any] | None = field(
        default=None, metadata=jkey("ExposedPorts", "object")
    )
    env: list[str] | None = field(default=None, metadata=jkey("Env", "strlist"))
    entrypoint: list[str] | None = field(default=None, metadata=jkey("Entrypoint", "strlist"))
    cmd: list[str] | None = field(default=None, metadata=jkey("Cmd", "strlist"))
    volumes: dict[str, Any] | None = field(default=None, metadata=jkey("Volumes", "object"))
    working_dir: str | None = field(default=None, metadata=jkey("WorkingDir", "str"))
    labels: dict[str, str] | None = field(default=None, metadata=jkey("Labels", "strmap"))
    stop_signal: str | None = field(default=None, metadata=jkey("StopSignal", "str"))
    args_escaped: bool | None = field(default=None, metadata=jkey("ArgsEscaped", "bool"))
    healthcheck: HealthConfig | None = field(
        default=None, metadata=jkey("Healthcheck", "model", model=HealthConfig)
    )
    on_build: list[str] | None = field(default=None, metadata=jkey("OnBuild", "strlist"))
    shell: list[str] | None = field(default=None, metadata=jkey("Shell", "strlist"))

    @classmethod
    def _what(cls) -> str:
        return "image config.config"

    def env_dict(self) -> dict[str, str]:
        """Env as a dict (later entries win, as in execve's environment)."""
        out: dict[str, str] = {}
        for item in self.env or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out


@dataclass(kw_only=True)
class RootFS(JSONModel):
    type: str = field(default="layers", metadata=jkey("type", "str", always=True, required=True))
    diff_ids: list[Digest] = field(
        default_factory=list, metadata=jkey("diff_ids", "digests", always=True, required=True)
    )

    def _validate(self, where: str) -> None:
        if self.type != "layers":
            raise InvalidDocument(f"{where}: type must be 'layers', got {self.type!r}")


@dataclass(kw_only=True)
class History(JSONModel):
    created: str | None = field(default=None, metadata=jkey("created", "str"))
    author: str | None = field(default=None, metadata=jkey("author", "str"))
    created_by: str | None = field(default=None, metadata=jkey("created_by", "str"))
    comment: str | None = field(default=None, metadata=jkey("comment", "str"))
    empty_layer: bool | None = field(default=None, metadata=jkey("empty_layer", "bool"))


@dataclass(kw_only=True)
class ImageConfig(Document):
    """An image config blob; `.raw` keeps the parsed bytes so its digest stays the image ID."""

    created: str | None = field(default=None, metadata=jkey("created", "str"))
    author: str | None = field(default=None, metadata=jkey("author", "str"))
    architecture: str = field(metadata=jkey("architecture", "str"))
    os: str = field(metadata=jkey("os", "str"))
    os_version: str | None = field(default=None, metadata=jkey("os.version", "str"))
    os_features: list[str] | None = field(default=None, metadata=jkey("os.features", "strlist"))
    variant: str | None = field(default=None, metadata=jkey("variant", "str"))
    config: ContainerConfig | None = field(
        default=None, metadata=jkey("config", "model", model=ContainerConfig)
    )
    rootfs: RootFS = field(
        default_factory=RootFS, metadata=jkey("rootfs", "model", model=RootFS, required=True)
    )
    history: list[History] | None = field(
        default=None, metadata=jkey("history", "models", model=History)
    )

    @classmethod
    def _what(cls) -> str:
        return "image config"

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> Self:
        what = cls._what()
        d, source = cls._load(raw, what)
        obj = cls.from_dict(d)
        obj._attach(raw, source)
        return obj

    def _validate(self, where: str) -> None:
        if self.history is None:
            return
        non_empty = sum(1 for h in self.history if not h.empty_layer)
        layers = len(self.rootfs.diff_ids)
        # Real images disagree here at times; refuse only more layer history than layers.
        if layers and non_empty > layers:
            raise InvalidDocument(f"{where}: history names {non_empty} layers, rootfs has {layers}")

    @property
    def diff_ids(self) -> list[Digest]:
        return self.rootfs.diff_ids

    @property
    def chain_id(self) -> Digest | None:
        return chain_id(self.rootfs.diff_ids) if self.rootfs.diff_ids else None

    @property
    def id(self) -> Digest:
        """The image ID, as docker and podman define it: the config's digest."""
        return self.digest

    def platform(self) -> Platform:
        return Platform(
            os=self.os,
            architecture=self.architecture,
            variant=self.variant,
            os_version=self.os_version,
            os_features=list(self.os_features) if self.os_features else None,
        )

    def ensure_config(self) -> ContainerConfig:
        """The `config` object, created empty if missing (for editing)."""
        if self.config is None:
            self.config = ContainerConfig()
        return self.config

"""The image configuration (OCI image config; the Docker container image config is a superset).

Docker writes many more fields (container_config, docker_version, Hostname, ...): they
stay in `extra` and survive a rewrite, so a modified Docker config is still Docker's.
"""

from __future__ import annotations

from typing import Any, Self

from portside.errors import InvalidDocument
from portside.oci._json import Document, JSONModel, jfield
from portside.oci.digest import Digest, chain_id
from portside.oci.platform import Platform

__all__ = ["ContainerConfig", "HealthConfig", "History", "ImageConfig", "RootFS"]


class HealthConfig(JSONModel):
    """Docker's Healthcheck (durations in nanoseconds)."""

    test: list[str] | None = jfield("Test", "strlist", default=None)
    interval: int | None = jfield("Interval", "int", default=None)
    timeout: int | None = jfield("Timeout", "int", default=None)
    start_period: int | None = jfield("StartPeriod", "int", default=None)
    start_interval: int | None = jfield("StartInterval", "int", default=None)
    retries: int | None = jfield("Retries", "int", default=None)


class ContainerConfig(JSONModel):
    """The `config` object: defaults for containers made from the image."""

    user: str | None = jfield("User", "str", default=None)
    exposed_ports: dict[str, Any] | None = jfield("ExposedPorts", "object", default=None)
    env: list[str] | None = jfield("Env", "strlist", default=None)
    entrypoint: list[str] | None = jfield("Entrypoint", "strlist", default=None)
    cmd: list[str] | None = jfield("Cmd", "strlist", default=None)
    volumes: dict[str, Any] | None = jfield("Volumes", "object", default=None)
    working_dir: str | None = jfield("WorkingDir", "str", default=None)
    labels: dict[str, str] | None = jfield("Labels", "strmap", default=None)
    stop_signal: str | None = jfield("StopSignal", "str", default=None)
    args_escaped: bool | None = jfield("ArgsEscaped", "bool", default=None)
    healthcheck: HealthConfig | None = jfield(
        "Healthcheck", "model", model=HealthConfig, default=None
    )
    on_build: list[str] | None = jfield("OnBuild", "strlist", default=None)
    shell: list[str] | None = jfield("Shell", "strlist", default=None)

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


class RootFS(JSONModel):
    type: str = jfield("type", "str", always=True, required=True, default="layers")
    diff_ids: list[Digest] = jfield(
        "diff_ids", "digests", always=True, required=True, default_factory=list
    )

    def _validate(self, where: str) -> None:
        if self.type != "layers":
            raise InvalidDocument(f"{where}: type must be 'layers', got {self.type!r}")


class History(JSONModel):
    created: str | None = jfield("created", "str", default=None)
    author: str | None = jfield("author", "str", default=None)
    created_by: str | None = jfield("created_by", "str", default=None)
    comment: str | None = jfield("comment", "str", default=None)
    empty_layer: bool | None = jfield("empty_layer", "bool", default=None)


class ImageConfig(Document):
    """An image config blob; `.raw` keeps the parsed bytes so its digest stays the image ID."""

    created: str | None = jfield("created", "str", default=None)
    author: str | None = jfield("author", "str", default=None)
    architecture: str = jfield("architecture", "str")
    os: str = jfield("os", "str")
    os_version: str | None = jfield("os.version", "str", default=None)
    os_features: list[str] | None = jfield("os.features", "strlist", default=None)
    variant: str | None = jfield("variant", "str", default=None)
    config: ContainerConfig | None = jfield("config", "model", model=ContainerConfig, default=None)
    rootfs: RootFS = jfield("rootfs", "model", model=RootFS, required=True, default_factory=RootFS)
    history: list[History] | None = jfield("history", "models", model=History, default=None)

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

    def layer_history(self) -> list[tuple[History, Digest | None]]:
        """Each history entry with the diffID of the layer it made (None for empty layers).

        Real images do not always agree between history and rootfs (squashed or hand-made
        ones), so this never fails: surplus entries get None, as docker shows "<missing>".
        """
        out: list[tuple[History, Digest | None]] = []
        layers = iter(self.rootfs.diff_ids)
        for h in self.history or []:
            out.append((h, None if h.empty_layer else next(layers, None)))
        return out

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

    def add_layer(
        self,
        diff_id: Digest | None,
        *,
        created_by: str | None = None,
        created: str | None = None,
        comment: str | None = None,
        author: str | None = None,
    ) -> None:
        """Record a new top layer (or, with `diff_id` None, an empty history step)."""
        if diff_id is not None:
            self.rootfs.diff_ids.append(Digest.parse(diff_id))
        if self.history is None:
            self.history = []
        self.history.append(
            History(
                created=created,
                created_by=created_by,
                comment=comment,
                author=author,
                empty_layer=True if diff_id is None else None,
            )
        )
        if created is not None:
            self.created = created

    def ensure_config(self) -> ContainerConfig:
        """The `config` object, created empty if missing (for editing)."""
        if self.config is None:
            self.config = ContainerConfig()
        return self.config

"""One error hierarchy for the whole of portside.

Every layer raises these; the CLI turns any of them into a single line on
stderr and an exit status (125 for engine errors, as docker does), so callers
never need to know which layer failed.
"""

from __future__ import annotations


class PortsideError(Exception):
    """Base of every error portside raises on purpose."""

    exit_code: int = 125


class NotFound(PortsideError):
    """A named thing (image, blob, container, layer, file) does not exist."""


class AlreadyExists(PortsideError):
    """A name or ID is taken."""


class InUse(PortsideError):
    """The thing is still needed by something else (an image by a container, ...)."""


class InvalidArgument(PortsideError):
    """A user-supplied value is malformed."""


class InvalidReference(InvalidArgument):
    """An image reference does not follow the distribution reference grammar."""


class InvalidDigest(InvalidArgument):
    """A digest string is not `algorithm:hex` with a known algorithm and length."""


class InvalidDocument(PortsideError):
    """A manifest, index, config or spec document is not what it claims to be."""


class UnsupportedMediaType(InvalidDocument):
    """The document's media type is one portside refuses (e.g. Docker schema 1)."""


class DigestMismatch(PortsideError):
    """Content did not hash to the digest it was fetched or stored under."""

    def __init__(self, expected: str, actual: str, what: str = "content") -> None:
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class SizeMismatch(PortsideError):
    """Content did not have the size its descriptor announced."""

    def __init__(self, expected: int, actual: int, what: str = "content") -> None:
        super().__init__(f"{what}: size mismatch: expected {expected} bytes, got {actual}")
        self.expected = expected
        self.actual = actual


class RegistryError(PortsideError):
    """A registry answered with an error or could not be reached."""


class Unauthorized(RegistryError):
    """The registry refused our credentials (or we had none)."""


class UnsafeLayer(PortsideError):
    """A layer tar tried to escape its root or break a limit; names the entry."""


class StorageError(PortsideError):
    """Mounting, unpacking or removing a layer or root filesystem failed."""


class RuntimeFailure(PortsideError):
    """The OCI runtime failed to create, start or manage a container."""


class ConfigError(PortsideError):
    """A configuration file (portside.toml, registries.conf, ...) is invalid."""


class CgroupError(RuntimeFailure):
    """Creating, limiting, freezing or removing a container's cgroup failed."""


class SeccompError(RuntimeFailure):
    """A seccomp filter could not be built or installed."""


class InvalidSeccompConfig(InvalidArgument, ValueError):
    """linux.seccomp in a runtime config is malformed (also a ValueError for plain callers)."""


class FileAccessError(PortsideError):
    """A file or directory the user named could not be read or written (permissions,
    space, a missing parent); carries the OS reason in one line."""

    @classmethod
    def from_os(cls, err: OSError, what: str | None = None) -> FileAccessError:
        name = what or err.filename or "file"
        return cls(f"{name}: {err.strerror or err}")


class BuildError(PortsideError):
    """An image build failed; the message names the file, line and instruction when known."""


class DockerfileSyntaxError(BuildError, InvalidArgument):
    """A Dockerfile/Containerfile (or .dockerignore) does not follow the language's grammar."""


class BuildStepFailed(BuildError):
    """A RUN step exited non-zero; the build exits with the step's status, as podman build."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.exit_code = status if 0 < status < 256 else 1


class NetworkError(PortsideError):
    """A network could not be set up or torn down (namespace, CNI plugin, firewall)."""


class CniPluginError(NetworkError):
    """A CNI plugin failed or is missing; the message names the network and the plugin."""

    def __init__(self, message: str, plugin: str = "", code: int = 0) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.code = code


class CommandNotFound(RuntimeFailure):
    """The container's command does not exist (`run` exits 127, as docker)."""

    exit_code = 127


class CommandNotInvokable(RuntimeFailure):
    """The container's command exists but cannot be run (`run` exits 126, as docker)."""

    exit_code = 126

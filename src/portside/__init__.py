"""portside: a container engine in Python.

The package root stays import-light: the OCI runtime and the monitor import
`portside` on every container start, so nothing heavy may load here.
"""

from portside.errors import (
    DigestMismatch,
    InvalidReference,
    NotFound,
    PortsideError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from portside.engine.python_api import Engine

__version__ = "0.1.0"

__all__ = [
    "DigestMismatch",
    "Engine",
    "InvalidReference",
    "NotFound",
    "PortsideError",
    "__version__",
]


def __getattr__(name: str) -> object:
    """`portside.Engine` is imported on first use, so `import portside` stays light."""
    if name == "Engine":
        from portside.engine.python_api import Engine

        return Engine
    raise AttributeError(f"module 'portside' has no attribute {name!r}")

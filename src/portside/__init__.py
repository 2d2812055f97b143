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

__version__ = "0.1.0"

__all__ = [
    "DigestMismatch",
    "InvalidReference",
    "NotFound",
    "PortsideError",
    "__version__",
]

"""The runtime's modules compiled into one file, for the launcher's start-up.

`portside-runtime` runs on every container start, and importing its ~30 modules the
usual way (the path finder's directory checks, a stat, an open and a read for each
.pyc, then the loader machinery) costs a fifth of a `run` of /bin/true. The launcher
(scripts/portside-runtime.in) reads this one file instead and takes a module's code
from it only while that module's source still has the size and modification time
recorded here (what a .pyc is checked against); any other module, or a changed one,
is imported the usual way. `make bytecode` and the runtime benchmark build it:

    python -m portside.runtime.hotpath OUT
"""

from __future__ import annotations

import marshal
import os
import sys

# the packages the runtime's verbs load (its own, the syscalls, the error classes)
PACKAGES = ("portside/runtime", "portside/linux")
MODULES = ("portside/__init__.py", "portside/errors.py")
FORMAT = 1


def _sources(src: str) -> list[str]:
    out = [os.path.join(src, m) for m in MODULES]
    for pkg in PACKAGES:
        for dirpath, dirs, files in os.walk(os.path.join(src, pkg)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            out += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".py")]
    return out


def _module_name(src: str, path: str) -> tuple[str, bool]:
    rel = os.path.relpath(path, src)[: -len(".py")]
    is_pkg = os.path.basename(rel) == "__init__"
    if is_pkg:
        rel = os.path.dirname(rel)
    return rel.replace(os.sep, "."), is_pkg


def build(out: str, src: str | None = None) -> int:
    """Write the bundle to `out` (atomically); returns the number of modules in it."""
    src = src or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    entries: dict[str, tuple[str, bool, int, int, bytes]] = {}
    for path in _sources(src):
        with open(path, "rb") as f:
            source = f.read()
        st = os.stat(path)
        name, is_pkg = _module_name(src, path)
        code = compile(source, path, "exec", dont_inherit=True)
        entries[name] = (path, is_pkg, st.st_mtime_ns, st.st_size, marshal.dumps(code))
    data = marshal.dumps(
        {"format": FORMAT, "magic": sys.implementation.cache_tag, "modules": entries}
    )
    tmp = f"{out}.{os.getpid()}.tmp"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, out)
    return len(entries)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m portside.runtime.hotpath OUT")
    build(sys.argv[1])

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

import ast
import importlib.util
import marshal
import os
import sys
from types import CodeType

# the packages the runtime's verbs load (its own, the syscalls, the error classes)
PACKAGES = ("portside/runtime", "portside/linux")
MODULES = ("portside/__init__.py", "portside/errors.py")
# the stdlib's source modules they load (the rest are built in or frozen)
STDLIB = ("__future__",)
# loaded by no container's start or stop: left out, so the launcher reads less
COLD = frozenset(
    {
        "portside/runtime/hotpath.py",
        "portside/runtime/hotboot.py",  # its code leads the bundle instead (see build)
        "portside/runtime/features.py",
        "portside/runtime/cgroups/ebpf.py",
        "portside/runtime/cgroups/bpfdev.py",
        "portside/runtime/cgroups/events.py",
        "portside/linux/bpf.py",
        *(f"portside/runtime/cli/{v}.py" for v in ("spec", "features", "events", "ps", "list_")),
    }
)
FORMAT = 3
BOOT = "portside/runtime/hotboot.py"


def tag() -> bytes:
    """What a bundle starts with: the cache tag of the interpreter that compiled it."""
    return sys.implementation.cache_tag.encode().ljust(16)


def _sources(src: str) -> list[str]:
    out = [os.path.join(src, m) for m in MODULES]
    for pkg in PACKAGES:
        for dirpath, dirs, files in os.walk(os.path.join(src, pkg)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            out += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".py")]
    return [p for p in out if os.path.relpath(p, src) not in COLD]


def _module_name(src: str, path: str) -> tuple[str, bool]:
    rel = os.path.relpath(path, src)[: -len(".py")]
    is_pkg = os.path.basename(rel) == "__init__"
    if is_pkg:
        rel = os.path.dirname(rel)
    return rel.replace(os.sep, "."), is_pkg


def lean_code(source: bytes, path: str) -> CodeType:
    """The module's code without its docstrings and function annotations.

    Nothing in the runtime reads either at run time, and they are an eighth of the
    bundle: less to read and unmarshal on every start. Line numbers are kept, so
    tracebacks point where the source does."""
    tree = ast.parse(source, path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
            args = node.args
            for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
                if arg is not None:
                    arg.annotation = None
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = body[1:] or [ast.copy_location(ast.Pass(), first)]
    return compile(tree, path, "exec", dont_inherit=True)


def build(out: str, src: str | None = None) -> int:
    """Write the bundle to `out` (atomically); returns the number of modules in it.

    Layout: the interpreter's cache tag (16 bytes, space-padded: code marshalled by
    another Python is never run), the 8-byte little-endian length of the marshalled code
    of portside.runtime.hotboot (the launcher runs it and calls install()), then an 8-byte
    length and a marshalled header of that length {"format", "magic", "modules": {name:
    (path, is_package, mtime_ns, size, offset, length)}}, then each module's marshalled
    code at its offset (from the end of the header), so a module is unmarshalled straight
    from the file's bytes."""
    src = src or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    entries: dict[str, tuple[str, bool, int, int, int, int]] = {}
    blobs: list[bytes] = []
    offset = 0
    sources = [(path, *_module_name(src, path)) for path in _sources(src)]
    for name in STDLIB:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            sources.append((spec.origin, name, False))
    for path, name, is_pkg in sources:
        with open(path, "rb") as f:
            source = f.read()
        st = os.stat(path)
        code = (
            compile(source, path, "exec", dont_inherit=True)
            if name in STDLIB
            else lean_code(source, path)
        )
        blob = marshal.dumps(code)
        entries[name] = (path, is_pkg, st.st_mtime_ns, st.st_size, offset, len(blob))
        blobs.append(blob)
        offset += len(blob)
    header = marshal.dumps(
        {"format": FORMAT, "magic": sys.implementation.cache_tag, "modules": entries}
    )
    boot_path = os.path.join(src, BOOT)
    with open(boot_path, "rb") as f:
        boot = marshal.dumps(compile(f.read(), boot_path, "exec", dont_inherit=True))
    tmp = f"{out}.{os.getpid()}.tmp"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(tag())
        f.write(len(boot).to_bytes(8, "little"))
        f.write(boot)
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        for blob in blobs:
            f.write(blob)
    os.rename(tmp, out)
    return len(entries)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m portside.runtime.hotpath OUT")
    build(sys.argv[1])

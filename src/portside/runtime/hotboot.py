"""The import hook the launcher installs from the module bundle (see portside.runtime.hotpath).

Its code travels in the bundle itself, compiled: the launcher (scripts/portside-runtime.in)
is a script, and a script is compiled from source on every start; this hook's ~50 lines
cost half a millisecond that way, on every container start. The launcher executes this
module's code from the bundle and calls install(); nothing imports it.
"""

# no `from __future__ import annotations`: this runs before the bundle's hook exists, and
# __future__ would come through the path finder; the annotations naming typing are quoted
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def install(raw: bytes, start: int) -> None:
    """Take the modules of the bundle `raw` (its header at `start`) from it while each one's
    source is unchanged (size and modification time, as a .pyc is checked against)."""
    import marshal
    import sys
    from posix import stat

    try:
        size = int.from_bytes(raw[start : start + 8], "little")
        header = marshal.loads(raw[start + 8 : start + 8 + size])
        if header["magic"] != sys.implementation.cache_tag:
            return
        modules = header["modules"]
        code = memoryview(raw)[start + 8 + size :]  # each module unmarshalled in place
    except (ValueError, EOFError, TypeError, KeyError):
        return
    spec_type = type(sys.__spec__)

    class HotPath:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> "Any":
            entry = modules.get(name)
            if entry is None:
                return None
            origin, is_pkg, mtime_ns, size = entry[:4]
            try:
                st = stat(origin)
            except OSError:
                return None
            if st.st_mtime_ns != mtime_ns or st.st_size != size:
                return None  # changed since the bundle was built: the usual import
            spec = spec_type(name, HotPath, origin=origin, is_package=is_pkg)  # type: ignore[arg-type]
            if is_pkg:
                spec.submodule_search_locations = [origin.rpartition("/")[0]]
            spec.has_location = True
            return spec

        @staticmethod
        def create_module(spec: object) -> None:
            return None

        @staticmethod
        def exec_module(module: "Any") -> None:
            offset, length = modules[module.__name__][4:]
            exec(marshal.loads(code[offset : offset + length]), module.__dict__)

    sys.meta_path.insert(0, HotPath)

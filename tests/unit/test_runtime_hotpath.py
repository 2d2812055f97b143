"""The launcher's module bundle: modules come from it while unchanged, never when stale."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portside.runtime import hotpath

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the sources the bundle holds, so a test may change one."""
    src = tmp_path / "src"
    for rel in hotpath.MODULES:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "src" / rel, src / rel)
    for pkg in hotpath.PACKAGES:
        shutil.copytree(REPO / "src" / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return src


def launcher(tmp_path: Path, src: Path, bundle: Path) -> Path:
    text = (REPO / "scripts" / "portside-runtime.in").read_text()
    text = text.replace("@PYTHON@", sys.executable).replace("@SRC@", str(src))
    script = tmp_path / "portside-runtime"
    script.write_text(text.replace("@BUNDLE@", str(bundle)))
    script.chmod(0o755)
    return script


def loaders(script: Path, *modules: str) -> list[str]:
    """Which loader each module came through when the launcher set up the imports."""
    head = script.read_text().split("from portside.runtime.cli.main import main")[0]
    code = (
        head
        + f"import importlib\nfor m in {list(modules)!r}:\n"
        + "    ld = importlib.import_module(m).__spec__.loader\n"
        + "    print(getattr(ld, '__name__', type(ld).__name__))\n"
    )
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    return r.stdout.split()


def test_unchanged_modules_come_from_the_bundle(tmp_path: Path, tree: Path) -> None:
    bundle = tmp_path / "bundle"
    assert hotpath.build(str(bundle), str(tree)) > 20
    script = launcher(tmp_path, tree, bundle)
    got = loaders(script, "portside.runtime.cli.main", "portside.linux.libc", "portside")
    assert got == ["HotPath", "HotPath", "HotPath"]
    r = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "version" in r.stdout, r.stderr


def test_a_changed_source_is_imported_the_usual_way(tmp_path: Path, tree: Path) -> None:
    bundle = tmp_path / "bundle"
    hotpath.build(str(bundle), str(tree))
    state = tree / "portside" / "runtime" / "cli" / "state.py"
    state.write_text(state.read_text() + "\nCHANGED = True\n")
    script = launcher(tmp_path, tree, bundle)
    got = loaders(script, "portside.runtime.cli.state", "portside.runtime.cli.main")
    assert got == ["SourceFileLoader", "HotPath"]
    head = script.read_text().split("from portside.runtime.cli.main import main")[0]
    r = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            head + "import portside.runtime.cli.state as s\nprint(s.CHANGED)",
        ],
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == "True", r.stderr


def test_a_missing_or_foreign_bundle_changes_nothing(tmp_path: Path, tree: Path) -> None:
    script = launcher(tmp_path, tree, tmp_path / "missing")
    assert loaders(script, "portside.runtime.cli.main") == ["SourceFileLoader"]
    junk = tmp_path / "junk"
    junk.write_bytes(b"not marshal data")
    script = launcher(tmp_path, tree, junk)
    assert loaders(script, "portside.runtime.cli.main") == ["SourceFileLoader"]
    # another interpreter's bundle (its tag differs): its code is never run
    good = tmp_path / "good"
    hotpath.build(str(good), str(tree))
    foreign = tmp_path / "foreign"
    foreign.write_bytes(b"cpython-27".ljust(16) + good.read_bytes()[16:])
    script = launcher(tmp_path, tree, foreign)
    assert loaders(script, "portside.runtime.cli.main") == ["SourceFileLoader"]
    # the right tag over broken code: the usual imports, not a crash
    broken = tmp_path / "broken"
    broken.write_bytes(hotpath.tag() + (1000).to_bytes(8, "little") + b"\xff" * 40)
    script = launcher(tmp_path, tree, broken)
    assert loaders(script, "portside.runtime.cli.main") == ["SourceFileLoader"]


def test_build_is_atomic_and_names_modules_by_path(tmp_path: Path, tree: Path) -> None:
    import marshal

    out = tmp_path / "b"
    hotpath.build(str(out), str(tree))
    raw = out.read_bytes()
    assert raw[:16] == hotpath.tag() == sys.implementation.cache_tag.encode().ljust(16)
    start = 24 + int.from_bytes(raw[16:24], "little")
    boot = marshal.loads(raw[24:start])
    assert boot.co_filename == str(tree / "portside" / "runtime" / "hotboot.py")
    n = int.from_bytes(raw[start : start + 8], "little")
    data = marshal.loads(raw[start + 8 : start + 8 + n])
    assert data["magic"] == sys.implementation.cache_tag
    mods = data["modules"]
    assert "portside.runtime.hotboot" not in mods
    origin, is_pkg, mtime_ns, size, offset, length = mods["portside.runtime"]
    at = start + 8 + n + offset
    code = marshal.loads(raw[at : at + length])
    assert code.co_filename == origin
    assert is_pkg and origin == str(tree / "portside" / "runtime" / "__init__.py")
    st = os.stat(origin)
    assert (st.st_mtime_ns, st.st_size) == (mtime_ns, size)
    assert not mods["portside.runtime.cli.main"][1]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("b.")] == []


def test_bundled_code_drops_docstrings_and_annotations_but_keeps_lines(tmp_path: Path) -> None:
    source = (
        b'"""module doc"""\n'
        b"def f(a: int, *b: str, c: 'X' = 1, **d: float) -> bool:\n"
        b'    """function doc"""\n'
        b"    return a + c\n"
        b"class K:\n"
        b'    """class doc"""\n'
        b"def g(x):\n"
        b'    """only a docstring"""\n'
        b"def h():\n"
        b"    raise ValueError('line 10')\n"
    )
    path = str(tmp_path / "m.py")
    ns: dict[str, object] = {}
    exec(hotpath.lean_code(source, path), ns)
    f, k, g, h = ns["f"], ns["K"], ns["g"], ns["h"]
    assert ns.get("__doc__") is None and f.__doc__ is None and k.__doc__ is None
    assert f.__annotations__ == {}
    assert f(1) == 2 and g(0) is None  # type: ignore[operator]
    with pytest.raises(ValueError) as err:
        h()  # type: ignore[operator]
    assert err.traceback[-1].lineno + 1 == 10  # pytest counts from 0
    # the runtime's own modules: smaller than plainly compiled
    import marshal

    main = REPO / "src" / "portside" / "runtime" / "process" / "launcher.py"
    plain = marshal.dumps(compile(main.read_bytes(), str(main), "exec", dont_inherit=True))
    assert len(marshal.dumps(hotpath.lean_code(main.read_bytes(), str(main)))) < len(plain)

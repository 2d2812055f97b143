"""pathops: the runtime's os-free path helpers answer as os.path does, and its start path
never imports os (the import those helpers exist to avoid)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from portside.linux import pathops

SRC = str(Path(__file__).resolve().parents[2] / "src")

# path-like texts built from the pieces that make normalisation interesting
piece = st.sampled_from(["", ".", "..", "a", "b", "...", "c d", "é", "/", "//", "///"])
paths = st.lists(piece, max_size=8).map("/".join)


@settings(max_examples=150, deadline=None)
@given(paths)
def test_normpath_dirname_basename_isabs_match_os_path(path: str) -> None:
    assert pathops.normpath(path) == os.path.normpath(path)
    assert pathops.dirname(path) == os.path.dirname(path)
    assert pathops.basename(path) == os.path.basename(path)
    assert pathops.isabs(path) == os.path.isabs(path)


@settings(max_examples=150, deadline=None)
@given(paths, st.lists(paths, max_size=4))
def test_join_matches_os_path(first: str, rest: list[str]) -> None:
    assert pathops.join(first, *rest) == os.path.join(first, *rest)


@settings(max_examples=50, deadline=None)
@given(paths)
def test_abspath_matches_os_path(path: str) -> None:
    assert pathops.abspath(path) == os.path.abspath(path)


def test_stat_predicates_and_realpath_match_os_path(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "to-dir").symlink_to("dir")
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "dir" / "up").symlink_to("../file")
    names = ["dir", "file", "to-dir", "dangling", "dir/up", "missing", "file/below", "to-dir/up"]
    for name in names:
        p = str(tmp_path / name)
        for fn in ("exists", "lexists", "isdir"):
            assert getattr(pathops, fn)(p) == getattr(os.path, fn)(p), (fn, name)
        if os.path.exists(p):
            assert pathops.resolve_existing(p) == os.path.realpath(p), name
        else:  # not resolved, only made absolute
            assert pathops.resolve_existing(p) == os.path.abspath(p), name


def test_makedirs_makes_parents_and_honours_exist_ok(tmp_path: Path) -> None:
    target = str(tmp_path / "a" / "b" / "c")
    pathops.makedirs(target, 0o700)
    assert os.path.isdir(target)
    assert os.stat(target).st_mode & 0o777 == 0o700
    pathops.makedirs(target, exist_ok=True)
    try:
        pathops.makedirs(target)
    except FileExistsError:
        pass
    else:
        raise AssertionError("makedirs of an existing directory without exist_ok succeeded")
    (tmp_path / "f").write_text("")
    try:
        pathops.makedirs(str(tmp_path / "f"), exist_ok=True)
    except FileExistsError:
        pass
    else:
        raise AssertionError("makedirs over a file succeeded")


def test_subdirs_bottom_up_lists_children_before_parents_without_following_links(
    tmp_path: Path,
) -> None:
    tmp_path = tmp_path / "tree"  # tmp_path holds the test's state roots too
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    (tmp_path / "link").symlink_to("a")
    (tmp_path / "a" / "file").write_text("")
    order = pathops.subdirs_bottom_up(str(tmp_path))
    assert sorted(order) == sorted(str(tmp_path / n) for n in ("a", "a/b", "c"))
    assert order.index(str(tmp_path / "a" / "b")) < order.index(str(tmp_path / "a"))
    assert pathops.subdirs_bottom_up(str(tmp_path / "missing")) == []


def test_getenv_and_fs_codecs() -> None:
    os.environ["PORTSIDE_PATHOPS_TEST"] = "välue"
    try:
        assert pathops.getenv("PORTSIDE_PATHOPS_TEST") == "välue"
    finally:
        del os.environ["PORTSIDE_PATHOPS_TEST"]
    assert pathops.getenv("PORTSIDE_PATHOPS_TEST") is None
    assert pathops.getenv("PORTSIDE_PATHOPS_TEST", "d") == "d"
    raw = b"caf\xe9"  # not UTF-8: kept through surrogateescape, as os does
    assert pathops.fsdecode(raw) == os.fsdecode(raw)
    assert pathops.fsencode(pathops.fsdecode(raw)) == raw


def test_runtime_start_path_modules_do_not_import_os() -> None:
    """What `run` loads before and after its fork (the init's side included), in an
    interpreter started as portside-runtime starts one (-I -S): no `os`."""
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import portside.runtime.cli.main, portside.runtime.cli.run, portside.runtime.cli.create,"
        " portside.runtime.process.launcher, portside.runtime.process.init,"
        " portside.runtime.rootfs, portside.runtime.capabilities, portside.runtime.cgroups.v1,"
        " portside.runtime.cgroups.resources, portside.runtime.cgroupctl;"
        "print(' '.join(m for m in ('os', 'posixpath', '_collections_abc', 'stat')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, SRC],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""

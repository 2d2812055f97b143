"""COPY source selection and .dockerignore against `buildah bud`: the file tree buildah
writes for a FROM scratch image equals the one portside's copy plan describes."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.build.context import BuildContext
from portside.build.dockerfile.instructions import Copy
from portside.build.evaluate import evaluate_metadata
from portside.build.stages import plan_build
from tests.interop.test_build_buildah_metadata import buildah_vfs_root

pytestmark = [pytest.mark.interop, pytest.mark.root]

CONTAINERFILE = """\
FROM scratch
COPY a.txt /one
COPY *.txt /txt/
COPY src /src-contents/
COPY src/pkg /pkgdir
COPY docs /docs/
WORKDIR /work
COPY link rel/
COPY ["with space", "spaced/"]
COPY s?c/*.py /py/
COPY . /all/
"""

IGNORE = """\
# comments and blank lines are skipped

*.md
!docs/keep.md
**/*.pyc
secret
src/pkg/private
"""


CASES = {
    "mixed": (CONTAINERFILE, IGNORE),
    "allowlist": (
        "FROM scratch\nCOPY . /all/\n",
        "*\n!src\nsrc/**/*.pyc\n!docs/sub/*.txt\n[ab].txt\n!Containerfile\n",
    ),
    "wildcards": (
        "FROM scratch\nCOPY . /all/\nCOPY docs/*/deep.md /deep/\n",
        "**/private\nd?cs/drop.md\nsrc/*/\n!src/pkg/exe.sh\n/notes.md\n",
    ),
}


def _make_context(root: Path, containerfile: str, ignore: str) -> None:
    files = {
        "a.txt": "a",
        "b.txt": "bb",
        "notes.md": "n",
        "secret": "s",
        "with space": "sp",
        "src/main.py": "main",
        "src/cache.pyc": "pyc",
        "src/pkg/mod.py": "mod",
        "src/pkg/private": "private",
        "src/pkg/exe.sh": "#!/bin/sh\n",
        "docs/keep.md": "keep",
        "docs/drop.md": "drop",
        "docs/sub/deep.md": "deep",
        "docs/sub/ok.txt": "ok",
    }
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    os.chmod(root / "src/pkg/exe.sh", 0o750)
    os.chmod(root / "src/pkg", 0o700)
    os.symlink("a.txt", root / "link")
    (root / "Containerfile").write_text(containerfile)
    (root / ".dockerignore").write_text(ignore)


def _tree(top: Path) -> dict[str, tuple[str, int | None, str | None]]:
    out: dict[str, tuple[str, int | None, str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            rel = "/" + str(full.relative_to(top))
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", None, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), None)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), full.read_text())
    return out


def _expected(ctx_root: Path, text: str) -> dict[str, tuple[str, int | None, str | None]]:
    plan = plan_build(text, filename="Containerfile")
    ev = evaluate_metadata(plan, skip=())
    ctx = BuildContext.from_directory(ctx_root, "Containerfile")
    out: dict[str, tuple[str, int | None, str | None]] = {}
    workdir = "/"
    for ins in plan.stages[0].instructions:
        if ins.keyword == "WORKDIR":
            workdir = "/work"
            out["/work"] = ("dir", 0o755, None)
        if not isinstance(ins, Copy):
            continue
        for item in ctx.plan_copy(ins.sources, ins.dest, workdir=workdir):
            full = ctx.root / item.src if item.src != "." else ctx.root
            if item.kind == "symlink":
                out[item.dest] = ("symlink", None, os.readlink(full))
            elif item.kind == "dir":
                out[item.dest] = ("dir", item.mode, None)
            else:
                out[item.dest] = ("file", item.mode, full.read_text())
            parent = os.path.dirname(item.dest)
            while parent != "/":
                out.setdefault(parent, ("dir", 0o755, None))
                parent = os.path.dirname(parent)
    assert ev[0].config.get("WorkingDir", "/") == workdir
    return out


@pytest.fixture
def buildah_root(tmp_path: Path) -> Iterator[list[str]]:
    with buildah_vfs_root(tmp_path) as base:
        yield base


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(CASES))
def test_copy_tree_equals_buildah(buildah_root: list[str], tmp_path: Path, case: str) -> None:
    text, ignore = CASES[case]
    ctx_root = tmp_path / "ctx"
    ctx_root.mkdir()
    _make_context(ctx_root, text, ignore)
    b = buildah_root
    res = subprocess.run(
        [*b, "bud", "-q", "--layers=false", "-t", "localhost/ctx-test", str(ctx_root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    cid = subprocess.run(
        [*b, "from", "localhost/ctx-test"], capture_output=True, text=True, check=True
    ).stdout.strip()
    mnt = subprocess.run(
        [*b, "mount", cid], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        theirs = _tree(Path(mnt))
    finally:
        subprocess.run([*b, "umount", cid], capture_output=True, check=False)
    ours = _expected(ctx_root, text)
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    assert not missing and not extra, f"buildah only: {missing}; portside only: {extra}"
    for path in sorted(theirs):
        assert ours[path] == theirs[path], path

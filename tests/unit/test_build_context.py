"""Build context: ignore-file semantics, COPY source selection, content hash, tar input."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.build.context import (
    BuildContext,
    CopyItem,
    IgnoreMatcher,
    add_source_kind,
    tar_compression,
)
from portside.errors import BuildError, DockerfileSyntaxError

# (patterns, path, excluded?) following docker's .dockerignore rules
TABLE = [
    (["*.md"], "README.md", True),
    (["*.md"], "docs/a.md", False),
    (["**/*.md"], "docs/deep/a.md", True),
    (["**/*.md"], "a.md", True),
    (["docs"], "docs", True),
    (["docs"], "docs/x/y", True),
    (["docs"], "documents", False),
    (["docs", "!docs/keep.md"], "docs/keep.md", False),
    (["docs", "!docs/keep.md"], "docs/drop.md", True),
    (["!keep", "*"], "keep", True),
    (["*", "!keep"], "keep", False),
    (["*", "!keep"], "other", True),
    (["/abs"], "abs", True),
    (["a/../b"], "b", True),
    (["./c"], "c", True),
    (["."], "anything", False),
    (["./"], "a/b", False),
    (["temp?"], "temp1", True),
    (["temp?"], "temp12", False),
    (["[a-c].txt"], "b.txt", True),
    (["[a-c].txt"], "d.txt", False),
    (["[^a].txt"], "a.txt", False),
    (["[^a].txt"], "z.txt", True),
    (["dir/**"], "dir/x/y", True),
    (["dir/**"], "dir", False),
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/x/c", False),
    (["**"], "any/thing", True),
    (["*/temp*"], "sub/temporary", True),
    (["*/temp*"], "sub/sub/temporary", False),
    (["# comment", ""], "# comment", False),
    (["  spaced.txt  "], "spaced.txt", True),
    (["\\*"], "*", True),
    (["\\*"], "x", False),
    (["*.go", "!vendor/**/*.go", "vendor/bad/*.go"], "vendor/ok/a.go", False),
    (["*.go", "!vendor/**/*.go", "vendor/bad/*.go"], "vendor/bad/a.go", True),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), TABLE)
def test_ignore_table(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreMatcher(patterns).excluded(path) is excluded


def test_ignore_bad_patterns() -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"^\.dockerignore: illegal exclusion"):
        IgnoreMatcher(["!"])
    with pytest.raises(DockerfileSyntaxError, match="bad pattern"):
        IgnoreMatcher(["[abc"])
    with pytest.raises(DockerfileSyntaxError, match="bad pattern"):
        IgnoreMatcher(["[z-a]"])


def make_ctx(tmp_path: Path, ignore: str | None = None, name: str = ".dockerignore") -> Path:
    root = tmp_path / "ctx"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "a.txt").write_text("a")
    (root / "b.txt").write_text("b")
    (root / "src" / "main.py").write_text("main")
    (root / "src" / "pkg" / "mod.py").write_text("mod")
    (root / "src" / "notes.md").write_text("notes")
    (root / "docs" / "keep.md").write_text("keep")
    (root / "docs" / "drop.md").write_text("drop")
    os.symlink("a.txt", root / "link")
    if ignore is not None:
        (root / name).write_text(ignore)
    return root


def test_containerignore_preferred_over_dockerignore(tmp_path: Path) -> None:
    root = make_ctx(tmp_path, "a.txt\n")
    (root / ".containerignore").write_text("b.txt\n")
    ctx = BuildContext.from_directory(root)
    assert ctx.excluded("b.txt") and not ctx.excluded("a.txt")
    (root / "Containerfile.dockerignore").write_text("src\n")
    per_file = BuildContext.from_directory(root, "Containerfile")
    assert per_file.excluded("src/main.py") and not per_file.excluded("b.txt")


def test_entries_skip_ignored_but_follow_exceptions(tmp_path: Path) -> None:
    root = make_ctx(tmp_path, "docs\n!docs/keep.md\n**/*.md\n!docs/keep.md\n")
    ctx = BuildContext.from_directory(root)
    paths = [e.path for e in ctx.entries()]
    # the excluded directory itself is not listed; its re-included child is
    assert paths == [
        ".",
        ".dockerignore",
        "a.txt",
        "b.txt",
        "docs/keep.md",
        "link",
        "src",
        "src/main.py",
        "src/pkg",
        "src/pkg/mod.py",
    ]
    kinds = {e.path: e.kind for e in ctx.entries()}
    assert kinds["link"] == "symlink" and kinds["src"] == "dir" and kinds["a.txt"] == "file"


def test_entries_with_copy_excludes(tmp_path: Path) -> None:
    ctx = BuildContext.from_directory(make_ctx(tmp_path))
    paths = [e.path for e in ctx.entries("src", ["*.md", "pkg"])]
    assert paths == ["src", "src/main.py"]


def test_resolve_sources(tmp_path: Path) -> None:
    ctx = BuildContext.from_directory(make_ctx(tmp_path, "b.txt\n"))
    assert ctx.resolve_sources(["*.txt"]) == ["a.txt"]
    assert ctx.resolve_sources(["src/*.py", "/src/pkg", "./a.txt"]) == [
        "src/main.py",
        "src/pkg",
        "a.txt",
    ]
    assert ctx.resolve_sources(["*/*.md"]) == ["docs/drop.md", "docs/keep.md", "src/notes.md"]
    assert ctx.resolve_sources(["."]) == ["."]
    with pytest.raises(BuildError, match=r"^b\.txt: not found in the build context"):
        ctx.resolve_sources(["b.txt"])
    with pytest.raises(BuildError, match="missing: not found"):
        ctx.resolve_sources(["missing"])
    with pytest.raises(BuildError, match=r"\*\.zip: no source files"):
        ctx.resolve_sources(["*.zip"])
    with pytest.raises(BuildError, match="outside the build context"):
        ctx.resolve_sources(["../etc/passwd"])


def test_content_hash_ignores_mtime_but_sees_content_mode_names_links(tmp_path: Path) -> None:
    root = make_ctx(tmp_path, "docs/drop.md\n")
    ctx = BuildContext.from_directory(root)
    srcs = ["src", "docs", "a.txt", "link"]
    h0 = ctx.content_hash(srcs)
    assert h0.startswith("sha256:") and len(h0) == 71
    os.utime(root / "src" / "main.py", (1, 1))
    assert ctx.content_hash(srcs) == h0
    (root / "docs" / "drop.md").write_text("ignored change")
    assert ctx.content_hash(srcs) == h0
    (root / "src" / "main.py").write_text("main2")
    h1 = ctx.content_hash(srcs)
    assert h1 != h0
    os.chmod(root / "src" / "main.py", 0o755)
    h2 = ctx.content_hash(srcs)
    assert h2 != h1
    os.rename(root / "src" / "pkg" / "mod.py", root / "src" / "pkg" / "mod2.py")
    h3 = ctx.content_hash(srcs)
    assert h3 != h2
    os.unlink(root / "link")
    os.symlink("b.txt", root / "link")
    assert ctx.content_hash(srcs) != h3
    assert ctx.content_hash(["a.txt"]) != ctx.content_hash(["b.txt"])
    assert ctx.content_hash(["src"], ["pkg"]) != ctx.content_hash(["src"])


def test_same_tree_elsewhere_hashes_the_same(tmp_path: Path) -> None:
    a = BuildContext.from_directory(make_ctx(tmp_path / "one"))
    b = BuildContext.from_directory(make_ctx(tmp_path / "two"))
    assert a.content_hash(["."]) == b.content_hash(["."])


def _tar(entries: list[tuple[str, str, bytes | str]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                info.mode = 0o640
                tf.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            elif kind == "sym":
                info.type = tarfile.SYMTYPE
                info.linkname = str(data)
                tf.addfile(info)
    buf.seek(0)
    return buf


def test_context_from_tar(tmp_path: Path) -> None:
    stream = _tar(
        [
            ("dir", "sub", b""),
            ("file", "sub/f", b"data"),
            ("file", "Containerfile", b"FROM scratch\n"),
            ("file", ".dockerignore", b"secret\n"),
            ("file", "secret", b"x"),
            ("file", "../escaped", b"still inside"),
            ("sym", "ln", "sub/f"),
        ]
    )
    ctx = BuildContext.from_tar(stream, tmp_path / "unpacked")
    assert (tmp_path / "unpacked" / "sub" / "f").read_bytes() == b"data"
    assert (tmp_path / "unpacked" / "escaped").read_bytes() == b"still inside"
    assert not (tmp_path / "escaped").exists()
    assert os.readlink(tmp_path / "unpacked" / "ln") == "sub/f"
    assert oct((tmp_path / "unpacked" / "sub" / "f").stat().st_mode & 0o777) == "0o640"
    assert ctx.excluded("secret")


def test_context_tar_refuses_paths_through_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    stream = _tar([("sym", "evil", str(outside)), ("file", "evil/pwned", b"x")])
    with pytest.raises(BuildError, match="evil/pwned: path goes through a symlink"):
        BuildContext.from_tar(stream, tmp_path / "unpacked")
    assert not (outside / "pwned").exists()


def test_context_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="is not a directory"):
        BuildContext.from_directory(tmp_path / "nope")


def _dests(items: list[CopyItem]) -> list[tuple[str, str]]:
    return [(i.src, i.dest) for i in items]


def test_plan_copy_files_dirs_and_workdir(tmp_path: Path) -> None:
    ctx = BuildContext.from_directory(make_ctx(tmp_path))
    assert _dests(ctx.plan_copy(["a.txt"], "/x")) == [("a.txt", "/x")]
    assert _dests(ctx.plan_copy(["a.txt"], "/x/")) == [("a.txt", "/x/a.txt")]
    assert _dests(ctx.plan_copy(["a.txt"], "rel/", workdir="/w")) == [("a.txt", "/w/rel/a.txt")]
    assert _dests(ctx.plan_copy(["a.txt", "b.txt"], ".", workdir="/w")) == [
        ("a.txt", "/w/a.txt"),
        ("b.txt", "/w/b.txt"),
    ]
    items = ctx.plan_copy(["src"], "/app")
    assert _dests(items) == [
        ("src", "/app"),
        ("src/main.py", "/app/main.py"),
        ("src/notes.md", "/app/notes.md"),
        ("src/pkg", "/app/pkg"),
        ("src/pkg/mod.py", "/app/pkg/mod.py"),
    ]
    assert items[0].mode == 0o755 and items[0].kind == "dir"
    with pytest.raises(BuildError, match="destination must be a directory ending in /"):
        ctx.plan_copy(["*.txt"], "/single")


def test_plan_copy_follows_named_symlinks_inside_the_context(tmp_path: Path) -> None:
    root = make_ctx(tmp_path)
    os.symlink("/src/../../../a.txt", root / "abs-link")
    os.symlink("src", root / "dirlink")
    os.symlink("nowhere", root / "dangling")
    ctx = BuildContext.from_directory(root)
    assert _dests(ctx.plan_copy(["link"], "/l")) == [("a.txt", "/l")]
    assert _dests(ctx.plan_copy(["abs-link"], "/d/")) == [("a.txt", "/d/abs-link")]
    assert ("src/main.py", "/x/main.py") in _dests(ctx.plan_copy(["dirlink"], "/x"))
    inner = {i.src: i.kind for i in ctx.plan_copy(["."], "/all/")}
    assert inner["link"] == "symlink"
    with pytest.raises(BuildError, match="dangling: symbolic link to a missing file"):
        ctx.plan_copy(["dangling"], "/x")


def test_plan_copy_parents_and_excludes(tmp_path: Path) -> None:
    ctx = BuildContext.from_directory(make_ctx(tmp_path))
    assert _dests(ctx.plan_copy(["src/pkg/mod.py", "a.txt"], "/p/", parents=True)) == [
        ("src/pkg/mod.py", "/p/src/pkg/mod.py"),
        ("a.txt", "/p/a.txt"),
    ]
    assert _dests(ctx.plan_copy(["./src/./pkg/mod.py"], "/p/", parents=True)) == [
        ("src/pkg/mod.py", "/p/pkg/mod.py"),
    ]
    assert _dests(ctx.plan_copy(["src/pkg"], "/p/", parents=True)) == [
        ("src/pkg", "/p/src/pkg"),
        ("src/pkg/mod.py", "/p/src/pkg/mod.py"),
    ]
    assert _dests(ctx.plan_copy(["*.txt"], "/t/", excludes=["b*"])) == [("a.txt", "/t/a.txt")]
    assert _dests(ctx.plan_copy(["src"], "/s", excludes=["pkg", "*.md"])) == [
        ("src", "/s"),
        ("src/main.py", "/s/main.py"),
    ]


@pytest.mark.parametrize(
    ("src", "kind"),
    [
        ("https://example.com/a.tar.gz", "url"),
        ("http://x/y", "url"),
        ("https://github.com/moby/buildkit.git#v0.12", "git"),
        ("git@github.com:a/b.git", "git"),
        ("git://host/repo", "git"),
        ("local.tar", "local"),
        ("dir/*.txt", "local"),
    ],
)
def test_add_source_kind(src: str, kind: str) -> None:
    assert add_source_kind(src) == kind


def test_tar_compression_by_content(tmp_path: Path) -> None:
    d = tmp_path / "files"
    d.mkdir()
    import bz2
    import gzip
    import lzma

    import zstandard

    plain = _tar([("file", "x", b"data")]).getvalue()
    (d / "plain.bin").write_bytes(plain)
    (d / "a.tgz").write_bytes(gzip.compress(plain))
    (d / "a.tbz").write_bytes(bz2.compress(plain))
    (d / "a.txz").write_bytes(lzma.compress(plain))
    (d / "a.tzst").write_bytes(zstandard.ZstdCompressor().compress(plain))
    (d / "notar.gz").write_bytes(gzip.compress(b"just text" * 100))
    (d / "text.tar").write_text("not a tar at all, despite the name\n" * 20)
    (d / "broken.gz").write_bytes(b"\x1f\x8b\x08garbage")
    v7 = bytearray(plain[:512])
    v7[257:265] = b"\0" * 8  # no ustar magic: an old v7 header, checksum fixed below
    v7[148:156] = b" " * 8
    v7[148:156] = (b"%06o\0 " % sum(v7))[:8]
    (d / "v7.tar").write_bytes(bytes(v7) + b"\0" * 1024)
    got = {p.name: tar_compression(p) for p in sorted(d.iterdir())}
    assert got == {
        "a.tbz": "bzip2",
        "a.tgz": "gzip",
        "a.txz": "xz",
        "a.tzst": "zstd",
        "broken.gz": None,
        "notar.gz": None,
        "plain.bin": "none",
        "text.tar": None,
        "v7.tar": "none",
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab/*?[]^!-\\.z ", max_size=8), max_size=4), st.text("ab/.z"))
def test_any_ignore_pattern_compiles_or_is_one_error(patterns: list[str], path: str) -> None:
    try:
        matcher = IgnoreMatcher(patterns)
    except DockerfileSyntaxError as e:
        assert str(e).startswith(".dockerignore: ")
        return
    assert matcher.excluded(path or "x") in (True, False)

"""Layer application on a real file system: formats, metadata, whiteouts."""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from portside.errors import StorageError, UnsafeLayer
from portside.storage.apply import (
    ApplyOptions,
    Compression,
    WhiteoutMode,
    apply_layer,
    unpack_layer,
)
from tests.fixtures.hostile import _info, _tar, d, f, hard, sym

SAMPLE = [
    d("etc"),
    f("etc/hostname", b"box\n"),
    d("usr"),
    d("usr/bin"),
    f("usr/bin/tool", b"#!/bin/sh\n", mode=0o755),
    hard("usr/bin/tool-alias", "usr/bin/tool"),
    sym("bin", "usr/bin"),
]


@pytest.mark.parametrize(
    "compress,kind",
    [
        (lambda b: b, Compression.NONE),
        (lambda b: gzip.compress(b, 1), Compression.GZIP),
        (lambda b: zstandard.ZstdCompressor().compress(b), Compression.ZSTD),
        # several members / frames, as pigz -i and zstd:chunked write them
        (lambda b: gzip.compress(b[:700]) + gzip.compress(b[700:]), Compression.GZIP),
        (
            lambda b: (
                b"".join(
                    zstandard.ZstdCompressor().compress(b[i : i + 600]) for i in (0, 600, 1200)
                )
                + zstandard.ZstdCompressor().compress(b[1800:])
            ),
            Compression.ZSTD,
        ),
    ],
    ids=["none", "gzip", "zstd", "gzip-members", "zstd-frames"],
)
def test_compressions_detected_and_diff_id_is_of_the_tar(
    tmp_path: Path, compress: object, kind: Compression
) -> None:
    import hashlib

    tar = _tar(SAMPLE)
    result = unpack_layer(io.BytesIO(compress(tar)), tmp_path / "l", ApplyOptions(threads=2))  # type: ignore[operator]
    assert result.compression is kind
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert result.size == len(tar) and result.entries == len(SAMPLE)
    assert (tmp_path / "l" / "etc" / "hostname").read_bytes() == b"box\n"
    a = os.lstat(tmp_path / "l" / "usr/bin/tool")
    b = os.lstat(tmp_path / "l" / "usr/bin/tool-alias")
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    assert os.readlink(tmp_path / "l" / "bin") == "usr/bin"


def test_metadata_modes_and_times(tmp_path: Path) -> None:
    entries = [
        (_info("ro", tarfile.DIRTYPE, mode=0o555, mtime=1_600_000_000), b""),
        f("ro/file", b"x", mode=0o640, mtime=1_500_000_000),
        (_info("sticky", tarfile.DIRTYPE, mode=0o1777), b""),
        f("sticky/suid", b"y", mode=0o4755),
    ]
    unpack_layer(io.BytesIO(_tar(entries)), tmp_path / "l", ApplyOptions(threads=2))
    root = tmp_path / "l"
    assert stat.S_IMODE(os.lstat(root / "ro").st_mode) == 0o555
    assert os.lstat(root / "ro").st_mtime == 1_600_000_000  # fixed after its children
    assert os.lstat(root / "ro/file").st_mtime == 1_500_000_000
    assert stat.S_IMODE(os.lstat(root / "ro/file").st_mode) == 0o640
    assert stat.S_IMODE(os.lstat(root / "sticky").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(root / "sticky/suid").st_mode) == 0o4755


@pytest.mark.root
def test_owners_set_before_setuid_bits(tmp_path: Path) -> None:
    entries = [
        f("suid", b"x", mode=0o6755, uid=1234, gid=4321),
        (_info("dir", tarfile.DIRTYPE, mode=0o2775, uid=7, gid=8), b""),
        (_info("link", tarfile.SYMTYPE, linkname="suid", uid=5, gid=6), b""),
    ]
    unpack_layer(io.BytesIO(_tar(entries)), tmp_path / "l")
    st = os.lstat(tmp_path / "l/suid")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 4321, 0o6755)
    st = os.lstat(tmp_path / "l/dir")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o2775)
    st = os.lstat(tmp_path / "l/link")
    assert (st.st_uid, st.st_gid) == (5, 6)


@pytest.mark.root
def test_whiteouts_in_overlay_form(tmp_path: Path) -> None:
    entries = [d("a"), f("a/.wh.gone", b""), d("o"), f("o/.wh..wh..opq", b""), f("o/kept", b"k")]
    unpack_layer(io.BytesIO(_tar(entries)), tmp_path / "l", ApplyOptions(threads=2))
    st = os.lstat(tmp_path / "l/a/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(tmp_path / "l/o", "trusted.overlay.opaque") == b"y"
    assert not (tmp_path / "l/a/.wh.gone").exists()
    assert os.listdir(tmp_path / "l/o") == ["kept"]


def test_whiteouts_applied_on_a_tree(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    opts = ApplyOptions(whiteouts=WhiteoutMode.APPLY, threads=2)
    lower = [d("a"), f("a/gone", b"1"), f("a/stay", b"2"), d("o"), d("o/sub"), f("o/sub/x", b"")]
    apply_layer(io.BytesIO(_tar(lower)), root, opts)
    upper = [d("a"), f("a/.wh.gone", b""), f("o/new", b"n"), f("o/.wh..wh..opq", b"")]
    apply_layer(io.BytesIO(_tar(upper)), root, opts)
    assert sorted(os.listdir(root / "a")) == ["stay"]
    assert sorted(os.listdir(root / "o")) == ["new"]  # opaque kept this layer's own file


def test_implicit_parent_takes_lower_metadata_in_overlay_mode(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    unpack_layer(
        io.BytesIO(_tar([(_info("etc", tarfile.DIRTYPE, mode=0o711, mtime=1_400_000_000), b"")])),
        lower,
    )
    upper = tmp_path / "upper"
    unpack_layer(
        io.BytesIO(_tar([f("etc/new", b"n")])), upper, ApplyOptions(lowers=[lower], threads=2)
    )
    st = os.lstat(upper / "etc")
    assert stat.S_IMODE(st.st_mode) == 0o711 and st.st_mtime == 1_400_000_000


def test_hardlink_to_a_lower_layer_file_is_copied_in_overlay_mode(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    unpack_layer(io.BytesIO(_tar([d("s"), f("s/orig", b"shared\n", mode=0o640)])), lower)
    upper = tmp_path / "upper"
    unpack_layer(io.BytesIO(_tar([hard("link", "s/orig")])), upper, ApplyOptions(lowers=[lower]))
    assert (upper / "link").read_bytes() == b"shared\n"
    assert stat.S_IMODE(os.lstat(upper / "link").st_mode) == 0o640


@pytest.mark.parametrize(
    "tar_args",
    [
        ["--format=gnu"],
        ["--format=posix", "--sparse-version=1.0"],
        ["--format=posix", "--sparse-version=0.1"],
    ],
    ids=["gnu", "pax-1.0", "pax-0.1"],
)
def test_sparse_file_from_gnu_tar(tmp_path: Path, tar_args: list[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse.img", "wb") as fh:
        fh.truncate(64 << 20)
        fh.seek(32 << 20)
        fh.write(b"middle")
    tar = tmp_path / "sparse.tar"
    subprocess.run(
        ["tar", "-S", *tar_args, "-cf", str(tar), "-C", str(src), "sparse.img"], check=True
    )
    unpack_layer(tar, tmp_path / "l", ApplyOptions(threads=2))
    out = tmp_path / "l" / "sparse.img"
    st = os.lstat(out)
    assert st.st_size == 64 << 20
    assert st.st_blocks * 512 < 1 << 20  # holes stayed holes
    with open(out, "rb") as fh:
        fh.seek(32 << 20)
        assert fh.read(6) == b"middle"


def test_big_file_streams_to_disk(tmp_path: Path) -> None:
    data = os.urandom(9 << 20)  # above the in-memory hand-off size
    unpack_layer(io.BytesIO(_tar([f("big", data)])), tmp_path / "l", ApplyOptions(threads=2))
    assert (tmp_path / "l" / "big").read_bytes() == data


def test_corrupt_and_truncated_layers_fail_cleanly(tmp_path: Path) -> None:
    good = gzip.compress(_tar([f("a", os.urandom(100_000))]))
    with pytest.raises(StorageError):
        unpack_layer(io.BytesIO(good[: len(good) // 2]), tmp_path / "t1")
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(StorageError):
        unpack_layer(io.BytesIO(bytes(bad)), tmp_path / "t2")
    with pytest.raises(StorageError):
        unpack_layer(io.BytesIO(b"not a tar at all" * 100), tmp_path / "t3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root", "run"]  # state_roots


def test_ceilings_name_the_entry(tmp_path: Path) -> None:
    tar = _tar([f("one", b"1" * 1000), f("two", b"2" * 1000)])
    with pytest.raises(UnsafeLayer, match=r"'two'.*more than 1500 bytes"):
        unpack_layer(io.BytesIO(tar), tmp_path / "a", ApplyOptions(max_size=1500))
    with pytest.raises(UnsafeLayer, match=r"'two'.*more than 1 entries"):
        unpack_layer(io.BytesIO(tar), tmp_path / "b", ApplyOptions(max_entries=1))

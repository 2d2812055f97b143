"""Archive kind detection (also compressed), stream decompression, and the tar stream helpers."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
import tempfile
from pathlib import Path

import pytest
import zstandard

from portside.errors import DigestMismatch, InvalidDocument, NotFound, SizeMismatch
from portside.images.archive_detect import (
    DOCKER_ARCHIVE,
    OCI_ARCHIVE,
    compress_gzip,
    decompress_chunks,
    detect_archive,
    detect_compression,
)
from portside.images.transports.oci_layout import Blob, verified
from portside.images.transports.tarstream import TarIndex, TarWriter
from portside.oci.digest import Digest


def make_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("compression", [None, "gzip", "zstd", "xz"])
def test_detect_archive_kind_also_compressed(tmp_path: Path, compression: str | None) -> None:
    before = temp_files()
    for kind, members in (
        (DOCKER_ARCHIVE, {"manifest.json": b"[]", "repositories": b"{}"}),
        (OCI_ARCHIVE, {"oci-layout": b"{}", "index.json": b"{}"}),
        (DOCKER_ARCHIVE, {"oci-layout": b"{}", "index.json": b"{}", "manifest.json": b"[]"}),
    ):
        path = tmp_path / f"{kind}.tar"
        make_tar(path, members)
        data = path.read_bytes()
        if compression == "gzip":
            data = gzip.compress(data)
        elif compression == "zstd":
            data = zstandard.ZstdCompressor().compress(data)
        elif compression == "xz":
            data = lzma.compress(data)
        path.write_bytes(data)
        assert detect_compression(data[:8]) == compression
        assert detect_archive(path) == kind
    assert temp_files() == before


def temp_files() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(".portside-archive-*")}


def test_detect_archive_names_what_is_wrong(tmp_path: Path) -> None:
    before = temp_files()
    other = tmp_path / "other.tar"
    make_tar(other, {"etc/passwd": b"root"})
    with pytest.raises(InvalidDocument, match=r"other\.tar: neither a docker-archive"):
        detect_archive(other)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01junk" * 300)
    with pytest.raises(InvalidDocument, match=r"junk\.bin: not a readable tar"):
        detect_archive(junk)
    with pytest.raises(NotFound, match="no such file"):
        detect_archive(tmp_path / "absent.tar")
    badgz = tmp_path / "bad.tar.gz"
    badgz.write_bytes(gzip.compress(b"x" * 100000)[:500])
    with pytest.raises(InvalidDocument, match=r"bad\.tar\.gz"):
        detect_archive(badgz)
    assert sorted(p.name for p in tmp_path.iterdir() if "." in p.name) == [
        "bad.tar.gz",
        "junk.bin",
        "other.tar",
    ]
    assert temp_files() == before


def test_decompress_chunks_multi_member_gzip_and_multi_frame_zstd() -> None:
    data = b"layer bytes " * 10000
    two_members = gzip.compress(data[:5000]) + gzip.compress(data[5000:])
    kind, out = decompress_chunks([two_members[i : i + 7] for i in range(0, len(two_members), 7)])
    assert kind == "gzip" and b"".join(out) == data
    zc = zstandard.ZstdCompressor()
    frames = zc.compress(data[:100]) + zc.compress(data[100:])
    kind, out = decompress_chunks([frames])
    assert kind == "zstd" and b"".join(out) == data
    kind, out = decompress_chunks([b"ab", b"cd"])
    assert kind is None and b"".join(out) == b"abcd"
    assert gzip.decompress(b"".join(compress_gzip([data[:10], data[10:]]))) == data


def test_tar_writer_streams_rolls_back_and_renames(tmp_path: Path) -> None:
    path = tmp_path / "w.tar"
    good = b"x" * 1000
    with open(path, "w+b") as f:
        w = TarWriter(f)
        w.add_bytes("a/b.json", b"{}")
        blob = Blob(str(Digest.from_bytes(good)), len(good), "x")
        w.add_stream("blobs/one", verified(iter([good[:10], good[10:]]), blob))
        with pytest.raises(SizeMismatch):
            w.add_stream("blobs/two", verified(iter([b"wrong"]), blob))
        with pytest.raises(DigestMismatch):
            w.add_stream("blobs/two", verified(iter([b"y" * 1000]), blob))
        w.add_stream("0000.tar", iter([b"abc"]), final_name=lambda: "abcd.tar")
        w.add_symlink("link", "blobs/one")
        w.finish()
    with tarfile.open(path) as tf:
        names = tf.getnames()
        assert names == ["a", "a/b.json", "blobs", "blobs/one", "abcd.tar", "link"]
    with TarIndex(path) as idx:
        assert idx.read("blobs/one") == good
        assert idx.read("./link") == good
        assert idx.read("abcd.tar") == b"abc"
        assert not idx.exists("blobs/two")
        with pytest.raises(NotFound, match="no file 'nope'"):
            idx.read("nope")


def test_tar_index_detects_truncation(tmp_path: Path) -> None:
    path = tmp_path / "t.tar"
    make_tar(path, {"a": b"1" * 5000, "b": b"2" * 5000})
    data = path.read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[:3000])
    with pytest.raises(InvalidDocument, match="truncated archive"):
        TarIndex(tmp_path / "cut.tar")

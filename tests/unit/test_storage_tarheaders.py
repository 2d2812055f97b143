"""portside's fast tar header parser agrees with tarfile's on every field."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.storage.apply import _FastTarInfo

FIELDS = (
    "name", "mode", "uid", "gid", "size", "mtime", "type", "linkname", "uname", "gname",
    "devmajor", "devminor", "pax_headers", "sparse", "offset", "offset_data",
)  # fmt: skip


def _parse(data: bytes, tarinfo: type[tarfile.TarInfo]) -> list[tuple[object, ...]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", tarinfo=tarinfo) as tf:
        return [tuple(getattr(m, f) for f in FIELDS) for m in tf]


def _build(entries: list[tarfile.TarInfo], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti in entries:
            tf.addfile(ti, io.BytesIO(b"x" * ti.size) if ti.isreg() else None)
    return buf.getvalue()


names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=300,
)
kinds = st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
     tarfile.BLKTYPE, tarfile.FIFOTYPE]
)  # fmt: skip


@st.composite
def infos(draw: st.DrawFn) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(draw(names))
    ti.type = draw(kinds)
    ti.mode = draw(st.integers(0, 0o7777))
    ti.uid = draw(st.integers(0, 2**21 - 1) | st.integers(2**21, 2**40))
    ti.gid = draw(st.integers(0, 2**21 - 1))
    ti.mtime = draw(st.integers(0, 2**33 - 1))
    ti.size = draw(st.integers(0, 3)) if ti.type == tarfile.REGTYPE else 0
    ti.linkname = draw(names) if ti.type in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    ti.uname = draw(st.sampled_from(["", "root", "nobody"]))
    ti.devmajor = draw(st.integers(0, 255))
    ti.devminor = draw(st.integers(0, 255))
    return ti


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@given(entries=st.lists(infos(), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_fast_parser_matches_tarfile(fmt: int, entries: list[tarfile.TarInfo]) -> None:
    try:
        data = _build(entries, fmt)
    except (ValueError, UnicodeError):
        return  # a header tarfile itself cannot write in this format
    assert _parse(data, _FastTarInfo) == _parse(data, tarfile.TarInfo)


def test_fast_parser_matches_on_ustar_prefix_and_v7_dirs() -> None:
    long_dir = "/".join(["segment"] * 20)
    ti = tarfile.TarInfo(f"{long_dir}/file")
    ti.size = 1
    d = tarfile.TarInfo("olddir/")
    d.type = tarfile.AREGTYPE
    data = _build([ti, d], tarfile.USTAR_FORMAT)
    assert _parse(data, _FastTarInfo) == _parse(data, tarfile.TarInfo)

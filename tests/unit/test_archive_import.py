"""`portside import`: --change parsing, the streaming tar check, and the image it builds."""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from pathlib import Path

import pytest
import zstandard

from portside.errors import InvalidArgument, InvalidDocument, NotFound
from portside.images.importer import ImportSource, TarChecker, apply_changes
from portside.images.transports.oci_layout import OciLayoutDestination
from portside.oci import mediatypes as mt
from tests.fixtures.images import busybox_entries, layer_tar, read_blob, read_json_blob
from tests.unit.test_archive_copyloop import mini_copy


def test_changes_cover_every_instruction() -> None:
    config = apply_changes(
        {},
        [
            'CMD ["sh", "-c", "echo hi"]',
            "ENTRYPOINT /bin/init --flag",
            'ENV A=1 B="two words"',
            "env A=3",
            "ENV LEGACY value with spaces",
            "EXPOSE 80 53/udp 8000-8002",
            'LABEL org.example="a b" x=y',
            "USER 1000:1000",
            'VOLUME ["/data", "/logs"]',
            "VOLUME /cache",
            "WORKDIR /srv",
            "WORKDIR app",
            "STOPSIGNAL SIGTERM",
        ],
    )
    assert config == {
        "Cmd": ["sh", "-c", "echo hi"],
        "Entrypoint": ["/bin/sh", "-c", "/bin/init --flag"],
        "Env": ["A=3", "B=two words", "LEGACY=value with spaces"],
        "ExposedPorts": {p: {} for p in ("80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp")},
        "Labels": {"org.example": "a b", "x": "y"},
        "User": "1000:1000",
        "Volumes": {"/data": {}, "/logs": {}, "/cache": {}},
        "WorkingDir": "/srv/app",
        "StopSignal": "SIGTERM",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("RUN echo hi", "RUN.*unsupported instruction"),
        ("CMD", "needs an argument"),
        ("EXPOSE 99999", "out of range"),
        ("EXPOSE 80/xyz", "unknown protocol"),
        ("ENV =x", "not KEY=VALUE"),
        ("STOPSIGNAL kill me", "not a signal"),
    ],
)
def test_bad_changes_are_refused(change: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        apply_changes({}, [change])


def test_tar_checker_accepts_tars_and_refuses_the_rest() -> None:
    tar = layer_tar(busybox_entries())
    checker = TarChecker("t")
    for i in range(0, len(tar), 777):
        checker.feed(tar[i : i + 777])
    checker.finish()
    assert checker.entries > 100
    cut = TarChecker("cut.tar")
    cut.feed(tar[: len(tar) // 3])
    with pytest.raises(InvalidDocument, match=r"cut\.tar: truncated tar archive"):
        cut.finish()
    with pytest.raises(InvalidDocument, match="not a tar archive"):
        TarChecker("x").feed(b"hello world" * 100)
    empty = TarChecker("e")
    with pytest.raises(InvalidDocument, match="empty tar"):
        empty.finish()


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_import_builds_a_one_layer_image(tmp_path: Path, compression: str) -> None:
    tar = layer_tar(busybox_entries())
    data = {
        "none": lambda b: b,
        "gzip": gzip.compress,
        "zstd": zstandard.ZstdCompressor().compress,
    }[compression](tar)
    src_file = tmp_path / "rootfs.tar"
    src_file.write_bytes(data)
    source = ImportSource(
        src_file, ['CMD ["sh"]', "ENV X=1"], message="hello", tmpdir=str(tmp_path)
    )
    out = tmp_path / "lay"
    top = mini_copy(source, OciLayoutDestination(out, "imported"))
    manifest = json.loads(top)
    assert manifest["mediaType"] == mt.OCI_MANIFEST
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == mt.OCI_LAYER_GZIP
    assert gzip.decompress(read_blob(out, layer["digest"])) == tar
    config = read_json_blob(out, manifest["config"]["digest"])
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()],
    }
    assert config["config"] == {"Cmd": ["sh"], "Env": ["X=1"]}
    assert config["history"][0]["comment"] == "hello"
    assert config["os"] == "linux" and config["architecture"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".portside-import")]


def test_import_records_the_platform_asked_for(tmp_path: Path) -> None:
    src_file = tmp_path / "rootfs.tar"
    src_file.write_bytes(layer_tar(busybox_entries()))
    source = ImportSource(src_file, platform="linux/arm64/v8", tmpdir=str(tmp_path))
    try:
        config = json.loads(source.config)
    finally:
        source.close()
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm64", "v8")
    with pytest.raises(InvalidArgument, match="invalid platform"):
        ImportSource(src_file, platform="a/b/c/d")


def test_import_refuses_bad_input_and_leaves_nothing(tmp_path: Path) -> None:
    before = set(Path(tempfile.gettempdir()).glob(".portside-import-*"))
    tar = layer_tar(busybox_entries())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(gzip.compress(tar[: len(tar) // 2]))
    with pytest.raises(InvalidDocument, match=r"cut\.tar\.gz: truncated tar archive"):
        ImportSource(cut)
    broken_gz = tmp_path / "broken.tar.gz"
    broken_gz.write_bytes(gzip.compress(tar)[:4000])
    with pytest.raises(InvalidDocument, match=r"broken\.tar\.gz"):
        ImportSource(broken_gz)
    text = tmp_path / "notes.txt"
    text.write_text("just some text\n" * 100)
    with pytest.raises(InvalidDocument, match=r"notes\.txt: not a tar archive"):
        ImportSource(text)
    with pytest.raises(NotFound, match="no such file"):
        ImportSource(tmp_path / "absent.tar")
    with pytest.raises(InvalidArgument, match="RUN"):
        ImportSource(cut, ["RUN true"])
    assert set(Path(tempfile.gettempdir()).glob(".portside-import-*")) == before

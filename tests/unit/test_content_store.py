"""Content store: ingest, verify, resume, concurrency, leases and GC on a real filesystem."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from portside.content import ContentStore
from portside.errors import DigestMismatch, NotFound, SizeMismatch
from portside.oci.digest import Digest


def test_put_and_read_back(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    d = store.put_bytes(b"hello")
    assert d == Digest.from_bytes(b"hello")
    assert store.blob_path(d) == tmp_path / "c" / "blobs" / "sha256" / d.hex
    assert store.read_bytes(d) == b"hello"
    assert store.size(d) == 5
    assert list(store.blobs()) == [(d, 5)]


def test_mismatch_names_both_digests_and_leaves_nothing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    expected = Digest.from_bytes(b"good")
    with pytest.raises(DigestMismatch) as info:
        store.ingest([b"bad!"], expected=expected, size=4)
    assert str(expected) in str(info.value)
    assert str(Digest.from_bytes(b"bad!")) in str(info.value)
    assert list(store.blobs()) == []
    assert list(store.ingest_dir.iterdir()) == []


def test_size_mismatch(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    with pytest.raises(SizeMismatch):
        store.ingest([b"abc"], expected=Digest.from_bytes(b"abc"), size=4)
    assert list(store.blobs()) == []


def test_resume_after_crash(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    data = os.urandom(3 << 20)
    d = Digest.from_bytes(data)
    w = store.writer("pull-x", expected=d)
    assert w is not None
    w.write(data[:1000])
    w.close()  # as if the process died: the partial ingest stays
    assert store.ingest_offset("pull-x") == 1000
    w2 = store.writer("pull-x", expected=d)
    assert w2 is not None and w2.offset == 1000
    w2.write(data[1000:])
    assert w2.commit(len(data), d) == d
    assert store.read_bytes(d) == data
    assert store.ingest_offset("pull-x") == 0


def test_writer_returns_none_when_blob_exists(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    d = store.put_bytes(b"x")
    assert store.writer("any", expected=d) is None


def test_corrupt_blob_detected_on_read_and_check(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    d = store.put_bytes(b"payload")
    path = store.blob_path(d)
    os.chmod(path, 0o644)
    path.write_bytes(b"pAyload")
    with pytest.raises(DigestMismatch):
        store.read_bytes(d)
    problems = store.verify_all()
    assert [p.digest for p in problems] == [d]
    store.verify_all(repair=True)
    assert not store.has(d)
    assert store.verify_all() == []


def test_read_missing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    with pytest.raises(NotFound):
        store.read_bytes(Digest.from_bytes(b"nope"))


def _ingest_in_child(root: str, data: bytes, barrier: object) -> None:
    store = ContentStore(root)
    barrier.wait()  # type: ignore[attr-defined]
    store.ingest([data[i : i + 4096] for i in range(0, len(data), 4096)], Digest.from_bytes(data))


def test_concurrent_ingests_store_once(tmp_path: Path) -> None:
    root = tmp_path / "c"
    ContentStore(root)
    data = os.urandom(1 << 20)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(6)
    procs = [
        ctx.Process(target=_ingest_in_child, args=(str(root), data, barrier)) for _ in range(6)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = ContentStore(root)
    assert list(store.blobs()) == [(Digest.from_bytes(data), len(data))]


def test_gc_marks_from_roots_and_leases(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    layer = store.put_bytes(b"layer")
    config = store.put_bytes(b'{"architecture":"amd64"}')
    manifest = {
        "schemaVersion": 2,
        "config": {"digest": config, "size": 1, "mediaType": "x"},
        "layers": [{"digest": layer, "size": 5, "mediaType": "x"}],
    }
    m = store.put_bytes(json.dumps(manifest).encode())
    index = store.put_bytes(
        json.dumps({"manifests": [{"digest": m, "size": 1, "mediaType": "x"}]}).encode()
    )
    orphan = store.put_bytes(b"orphan")
    leased = store.put_bytes(b"leased")
    with store.lease() as lease:
        lease.add(leased)
        report = store.gc([index])
        assert report.removed == [orphan]
        assert store.has(leased) and store.has(layer) and store.has(config)
    # the lease is gone: its blob is collectable now
    report = store.gc([index])
    assert report.removed == [leased]


def test_stale_lease_of_dead_process_is_ignored(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    d = store.put_bytes(b"x")
    (store.leases_dir / "dead").write_text(f"{d}\n")  # nobody holds its lock
    assert store.gc([]).removed == [d]
    assert not (store.leases_dir / "dead").exists()


def test_gc_removes_stale_ingests_only_when_asked(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    w = store.writer("partial")
    assert w is not None
    w.write(b"half")
    w.close()
    assert store.gc([]).ingests_removed == 0
    assert store.ingest_offset("partial") == 4
    assert store.gc([], keep_ingests=False).ingests_removed == 1
    assert store.ingest_offset("partial") == 0


def test_committed_ingest_leaves_no_lock_files(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    store.put_bytes(b"one")
    w = store.writer("killed-before-writing")
    assert w is not None
    w.close()
    store.gc([], keep_ingests=False)
    assert list(store.ingest_dir.iterdir()) == []


def test_protect_leases_and_reports_presence(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c")
    d = store.put_bytes(b"x")
    missing = Digest.from_bytes(b"y")
    with store.lease() as lease:
        assert lease.protect(d) is True
        assert lease.protect(missing) is False
        assert store.gc([]).removed == []  # leased, so kept
    assert store.gc(lambda: []).removed == [d]

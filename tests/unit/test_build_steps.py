"""Pure parts of the builder: --chmod arithmetic, cache keys, the stat-keyed digest
cache, and the progress lines in podman's words."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from portside.build.cache import BuildCache, step_key
from portside.build.progress import Progress
from portside.build.steps import apply_chmod
from portside.errors import BuildError


@pytest.mark.parametrize(
    ("spec", "mode", "is_dir", "want"),
    [
        ("755", 0o644, False, 0o755),
        ("0640", 0o777, False, 0o640),
        ("u+x", 0o644, False, 0o744),
        ("go-w", 0o666, False, 0o644),
        ("a=r", 0o777, False, 0o444),
        ("u=rwx,g=rx,o=", 0o000, False, 0o750),
        ("a+X", 0o644, True, 0o755),
        ("a+X", 0o644, False, 0o644),
        ("a+X", 0o744, False, 0o755),
        ("+t", 0o755, True, 0o1755),
        ("u+s", 0o755, False, 0o4755),
    ],
)
def test_chmod(spec: str, mode: int, is_dir: bool, want: int) -> None:
    assert apply_chmod(spec, mode, is_dir) == want


def test_chmod_rejects_garbage() -> None:
    with pytest.raises(BuildError):
        apply_chmod("u+q", 0o644, False)


def test_step_keys_chain_and_differ() -> None:
    base = step_key("image", "sha256:abc")
    a = step_key(base, {"type": "Env", "pairs": [["A", "1"]]})
    assert a == step_key(base, {"pairs": [["A", "1"]], "type": "Env"})  # key order
    assert a != step_key(base, {"type": "Env", "pairs": [["A", "2"]]})
    assert a != step_key(step_key("scratch"), {"type": "Env", "pairs": [["A", "1"]]})


def test_cache_round_trip_and_file_digests(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path)
    cache.put("k", {"config": {"a": 1}, "layers": []})
    assert cache.get("k") == {"config": {"a": 1}, "layers": []}
    assert cache.get("missing") is None
    import hashlib

    f = tmp_path / "f"
    f.write_bytes(b"one")
    # just written: a digest taken now is "racy" (a write in the same clock tick would
    # not change the stat), so it is not trusted later and the file is read again
    assert cache.file_digest(str(f), os.stat(f)) == hashlib.sha256(b"one").digest()
    cache.close()
    cache = BuildCache(tmp_path)
    f.write_bytes(b"two")  # same size, maybe the same mtime tick
    assert cache.file_digest(str(f), os.stat(f)) == hashlib.sha256(b"two").digest()
    cache.close()
    # an old file's digest is kept and served without reading it
    os.utime(f, (1_600_000_000, 1_600_000_000))
    cache = BuildCache(tmp_path)
    assert cache.get("k") is not None
    st = os.stat(f)
    # ctime moved with utime: still racy once, then trusted
    cache.file_digest(str(f), st)
    cache.flush()
    cache.close()
    cache = BuildCache(tmp_path)
    cache._db.execute("UPDATE build_file_digests2 SET hashed=hashed+?", (10 * 10**9,))
    assert cache.file_digest(str(f), os.stat(f)) == hashlib.sha256(b"two").digest()
    assert cache._pending == []
    cache.close()


def test_progress_lines() -> None:
    out = io.StringIO()
    p = Progress(out=out)
    p.step(1, 2, 1, 3, "FROM busybox AS b")
    p.cached("a" * 64)
    p.step(1, 1, 2, 3, "RUN true")
    p.done("b" * 64)
    p.commit("localhost/x:latest")
    p.tagged("localhost/x:latest")
    p.final("c" * 64)
    assert out.getvalue().splitlines() == [
        "[1/2] STEP 1/3: FROM busybox AS b",
        "--> Using cache " + "a" * 64,
        "STEP 2/3: RUN true",
        "--> " + "b" * 12,
        "COMMIT localhost/x:latest",
        "Successfully tagged localhost/x:latest",
        "c" * 64,
    ]
    quiet = io.StringIO()
    q = Progress(quiet=True, out=quiet)
    q.step(1, 1, 1, 1, "FROM x")
    q.output(b"run output\n")
    q.final("d" * 64)
    assert quiet.getvalue() == "d" * 64 + "\n"
    assert bytes(q.captured) == b"run output\n"


def test_run_created_by_names_build_args_and_flags_as_buildah() -> None:
    from portside.build.evaluate import created_by
    from portside.build.stages import plan_build

    text = "FROM scratch\nRUN --network=none echo hi\nRUN echo  there\n"
    ins = plan_build(text).stages[0].instructions
    assert created_by(ins[0]) == "/bin/sh -c --network=none echo hi"
    assert created_by(ins[1], stage_args={"B": "x y", "A": "1"}) == (
        "|3 A=1 B=x y /bin/sh -c echo  there"
    )

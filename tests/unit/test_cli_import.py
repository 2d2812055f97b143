"""`portside import` of a tarball cut short: one line, status 125, and nothing stored."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

PORTSIDE = [sys.executable, "-m", "portside.cli"]


def test_a_truncated_tarball_fails_in_one_line_and_stores_nothing(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = os.urandom(1 << 20)
        info = tarfile.TarInfo("big")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(buf.getvalue()[: 600 * 1024])  # ends inside the entry
    r = subprocess.run(
        [*PORTSIDE, "import", str(cut), "x:1"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PORTSIDE_WARM="0"),
        timeout=60,
    )
    assert r.returncode == 125
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "truncated" in lines[0]
    content = Path(os.environ["PORTSIDE_ROOT"]) / "content"
    assert [p for p in content.rglob("*") if p.is_file() and p.suffix != ".lock"] == []
    assert [p for p in (content / "ingest").iterdir()] == []
    images = subprocess.run(
        [*PORTSIDE, "images", "-q"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PORTSIDE_WARM="0"),
        timeout=60,
    )
    assert images.returncode == 0 and images.stdout == ""

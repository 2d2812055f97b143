"""The COPY cache key covers what is copied: a source named through a symlink (to a
file, or a path through a directory symlink) is keyed by the content it leads to, so
editing that content rebuilds the step instead of reusing a stale layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.test_engine_support import IMAGE, Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]


@pytest.mark.parametrize("source", ["link", "dir-link/data.txt"])
def test_changed_content_behind_a_symlink_is_not_a_cache_hit(
    env: Env, tmp_path: Path, source: str
) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "real").mkdir(parents=True)
    (ctx / "Containerfile").write_text(f"FROM {IMAGE}\nCOPY {source} /got\n")
    data = ctx / "real" / "data.txt"
    data.write_text("first\n")
    os.symlink("real/data.txt", ctx / "link")
    os.symlink("real", ctx / "dir-link")
    files = tmp_path / "files"
    env.cli("build", "-q", "-o", f"type=local,dest={files}/1", str(ctx))
    assert (files / "1" / "got").read_text() == "first\n"
    data.write_text("second, longer\n")
    out = env.cli("build", "-o", f"type=local,dest={files}/2", str(ctx)).stdout
    assert "--> Using cache" not in out
    assert (files / "2" / "got").read_text() == "second, longer\n"

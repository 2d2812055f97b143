"""The builder's failure path beyond a RUN that exits non-zero (test_build_builder): a
RUN whose command cannot start, a RUN that fails after a --from view and a bind mount
were set up, and a COPY that fails in a later stage; none leaves a mount, snapshot,
container, cgroup or work dir behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_build_builder import _leftovers
from tests.integration.test_engine_support import IMAGE, Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]

CASES = {
    "exec-fails": f'FROM {IMAGE}\nRUN ["/no/such/binary"]\n',
    "after-view-and-bind": (
        f"FROM {IMAGE} AS a\nCOPY data.txt /d\n"
        f"FROM {IMAGE}\nCOPY --from=a /d /d\n"
        "RUN --mount=type=bind,from=a,source=/d,target=/m "
        "--mount=type=bind,source=data.txt,target=/c,rw=true --mount=type=tmpfs,target=/t "
        "cat /m /c && exit 7\n"
    ),
    "copy-missing-later": f"FROM {IMAGE} AS a\nCOPY data.txt /d\nFROM a\nCOPY --from=a /nope /x\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_failed_build_leaves_nothing(env: Env, tmp_path: Path, case: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(CASES[case])
    (ctx / "data.txt").write_text("context data\n")
    proc = env.cli("build", "-q", str(ctx), check=False)
    assert proc.returncode != 0, proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: "), proc.stderr
    if case == "after-view-and-bind":
        assert proc.returncode == 7
    assert _leftovers(env) == []
    assert (
        env.cli("images", "-q").stdout.strip().splitlines()
        == env.cli("images", "-q", IMAGE).stdout.strip().splitlines()
    )  # no image was tagged or left unnamed

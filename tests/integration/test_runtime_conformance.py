"""The runtime suite, run against portside-runtime, runc and crun (crun in a cgroup-v1 view)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from portside.testing.runtime_suite import SCENARIOS, Runtime, crun_v1_wrapper, run_scenario
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

PORTSIDE_RUNTIME = str(Path(sys.executable).with_name("portside-runtime"))
RUNTIMES = ["portside", "runc", "crun"]


def make_runtime(name: str, tmp: Path) -> Runtime:
    need_root()
    state = tmp / f"state-{name}"
    if name == "portside":
        return Runtime(name, [PORTSIDE_RUNTIME, "--root", str(state)])
    need_tool(name)
    if name == "crun":
        return Runtime(name, [str(crun_v1_wrapper(tmp)), "--root", str(state)])
    return Runtime(name, [name, "--root", str(state)])


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return make_runtime(request.param, tmp_path)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(runtime: Runtime, scenario: object, tmp_path: Path) -> None:
    run_scenario(runtime, scenario, tmp_path / "b")  # type: ignore[arg-type]

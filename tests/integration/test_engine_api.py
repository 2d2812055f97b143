"""The Python API (`portside.Engine`) without the CLI, and the engine's reconcile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import portside
from portside.errors import InUse, NotFound
from tests.integration.test_engine_support import IMAGE, Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]


def test_import_portside_stays_light() -> None:
    code = "import sys, portside; print(sorted(m for m in sys.modules if m.startswith('portside')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "portside.engine" not in out.stdout
    assert "click" not in out.stdout


def test_engine_runs_execs_and_removes(env: Env) -> None:
    with portside.Engine(root=env.root, runroot=env.runroot) as engine:
        assert IMAGE in engine.images.get(IMAGE).names
        result = engine.containers.run(
            IMAGE, ["sh", "-c", "echo out; echo err >&2; exit 5"], remove=True, env=["A=1"]
        )
        assert (result.exit_code, result.stdout, result.stderr) == (5, b"out\n", b"err\n")
        with pytest.raises(NotFound):
            engine.containers.get(result.id)
        c = engine.containers.run_detached(IMAGE, ["sleep", "60"], name="api", labels={"k": "v"})
        assert c.status == "running" and c.info.labels["k"] == "v"
        ex = engine.containers.exec("api", ["sh", "-c", "echo $A-$HOSTNAME"], env=["A=x"])
        assert ex.exit_code == 0 and ex.stdout.decode().startswith("x-")
        with pytest.raises(InUse):
            engine.containers.remove("api")
        engine.containers.stop("api", timeout=1)
        assert engine.containers.wait("api") == 137
        assert [x.name for x in engine.containers.list(all=True)] == ["api"]
        engine.containers.remove("api")
        assert engine.containers.list(all=True) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_container_whose_monitor_died_is_shown_exited(env: Env) -> None:
    env.cli("run", "-d", "--name", "orphan", IMAGE, "sleep", "60")
    cid = env.inspect("orphan")["Id"]
    monitor = int((env.runroot / "c" / cid[:12] / "monitor.pid").read_text())
    os.kill(monitor, signal.SIGKILL)
    env.wait_for("the monitor's end", lambda: not _alive(monitor))
    state = env.inspect("orphan")["State"]
    assert state["Status"] == "exited" and not state["Running"]
    engine = env.engine()
    try:
        assert engine.reconcile() == [cid]
    finally:
        engine.close()
    # the container's init, which outlived its monitor, was killed by the reconcile
    runtime_state = env.runroot / "runtime" / "portside-runtime" / cid
    assert not runtime_state.exists()
    env.cli("rm", "orphan")


def test_an_image_in_use_by_a_container_is_not_removed(env: Env) -> None:
    with portside.Engine(root=env.root, runroot=env.runroot) as engine:
        engine.containers.create(IMAGE, ["true"], name="holder")
        with pytest.raises(InUse, match="holder"):
            engine.images.remove(IMAGE)
        engine.containers.remove("holder")
        engine.images.remove(IMAGE)
        with pytest.raises(NotFound):
            engine.images.get(IMAGE)

"""A warm CLI worker that dies under its caller (killed, not through the caller): the caller
exits 125 and says why on stderr, instead of a bare status nobody can explain."""

from __future__ import annotations

import os
import signal

import pytest

from portside.cli.warm import DIED
from tests.integration.test_cli_warm import TICKER, Warm, run_script, warm
from tests.integration.test_engine_support import Env, engine_template, env

__all__ = ["engine_template", "env", "warm"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]


def test_a_killed_worker_makes_its_caller_say_so(env: Env, warm: Warm) -> None:
    proc, worker = warm.served(env, run_script(TICKER, stderr=True), "tick 0\n")
    assert proc.stdout is not None and proc.stderr is not None
    os.kill(worker, signal.SIGKILL)  # the worker this test's warm CLI forked for the call
    assert proc.wait(timeout=60) == 125
    # what the caller wrote before it exited is in the pipe (others may still hold it open)
    os.set_blocking(proc.stderr.fileno(), False)
    err = proc.stderr.read() or ""
    assert DIED.decode().strip() in err.splitlines()
    proc.stdout.close()
    proc.stderr.close()
    running = env.cli("ps", "-q").stdout.split()
    env.cli("rm", "-f", *running)

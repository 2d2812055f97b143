"""The warm CLI (cli/warm.py): calls served by a pre-imported worker behave as the CLI's
own process would: stdio, working directory, environment, exit status, signals, and
the caller's death; callers it cannot stand in for run the CLI themselves."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_engine_support import IMAGE, PORTSIDE, Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]

TICKER = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"


def run_script(script: str, stderr: bool = False) -> Callable[[], subprocess.Popen[str]]:
    """What warm.served launches: `portside run --rm IMAGE sh -c SCRIPT`, its output piped
    (stderr too, if asked), no stdin."""
    return lambda: subprocess.Popen(
        [PORTSIDE, "run", "--rm", IMAGE, "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr else None,
        stdin=subprocess.DEVNULL,
        text=True,
    )


class Warm:
    """A private warm CLI for one test (its own directory), stopped at the end."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @property
    def pid(self) -> int | None:
        try:
            return int((self.dir / "cli.pid").read_text())
        except (OSError, ValueError):
            return None

    def workers(self) -> list[int]:
        """Processes the warm CLI forked (its children) right now."""
        pid = self.pid
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rpartition(")")[2].split()[1]) == pid:
                        out.append(int(entry.name))
        return out

    def start(self, e: Env) -> int:
        e.cli("version")  # finds none, starts one in the background
        e.wait_for("the warm CLI", lambda: (self.dir / "cli.sock").exists() and bool(self.pid))
        pid = self.pid
        assert pid is not None
        return pid

    def served(
        self, e: Env, launch: Callable[[], subprocess.Popen[str]], first_line: str
    ) -> tuple[subprocess.Popen[str], int]:
        """Start the warm CLI, launch a call, read its first output line: (the call, its
        worker). Another session's edit of a source file makes a running warm CLI stale
        (the call then runs itself and a fresh one starts): only that case is retried."""
        for _ in range(5):
            pid = self.start(e)
            proc = launch()
            assert proc.stdout is not None
            assert proc.stdout.readline() == first_line
            workers = self.workers()
            if workers or self.pid == pid:
                assert len(workers) == 1, "the call did not run in a worker"
                return proc, workers[0]
            proc.kill()  # a fresh warm CLI took over meanwhile: again
            proc.communicate()
        raise AssertionError("the source tree kept changing")

    def stop(self) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(OSError):
            if str(self.dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def warm_in(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warm]:
    """The test's own warm CLI in `directory`, turned on for its calls, stopped after."""
    w = Warm(directory)
    monkeypatch.setenv("PORTSIDE_WARM_DIR", str(w.dir))
    monkeypatch.delenv("PORTSIDE_WARM", raising=False)
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def warm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warm]:
    with warm_in(tmp_path / "warm", monkeypatch) as w:
        yield w


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_call_runs_in_a_worker_with_the_callers_stdio_cwd_env_and_status(
    env: Env, warm: Warm, tmp_path: Path
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    (here / "vars.env").write_text("FROM_FILE=file\n")
    script = 'echo "$MARKER $FROM_FILE"; read line; echo "got $line"; exit 5'
    # -e NAME takes NAME's value from the CLI's environment; --env-file is relative
    args = ["run", "--rm", "-i", "-e", "MARKER", "--env-file", "vars.env", IMAGE, "sh", "-c"]
    proc, worker = warm.served(
        env,
        lambda: subprocess.Popen(
            [PORTSIDE, *args, script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE,
            cwd=here,
            env={**os.environ, "MARKER": "from-env"},
            text=True,
        ),
        "from-env file\n",
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert os.readlink(f"/proc/{worker}/cwd") == str(here)  # the caller's directory
        proc.stdin.write("hello\n")
        proc.stdin.close()
        assert proc.stdout.read() == "got hello\n"
        assert proc.wait(timeout=60) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    # the status and stderr of a failing call, and stdin
    missing = env.cli("inspect", "--type", "container", "nosuch", check=False)
    assert missing.returncode == 125
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert "nosuch" in missing.stderr
    assert env.cli("run", "--rm", "-i", IMAGE, "cat", input="via stdin\n").stdout == "via stdin\n"
    code = env.cli("run", "--rm", IMAGE, "sh", "-c", "echo err >&2; exit 7", check=False)
    assert (code.returncode, code.stderr) == (7, "err\n")
    # each worker ends with its call (after deleting what rm renamed away)
    env.wait_for("the workers to end", lambda: warm.workers() == [])


def test_signals_go_to_the_worker_and_the_callers_death_ends_it(env: Env, warm: Warm) -> None:
    script = "trap 'echo got-int; exit 9' INT; echo ready; while true; do sleep 0.1; done"
    proc, _ = warm.served(env, run_script(script), "ready\n")
    assert proc.stdout is not None
    proc.send_signal(signal.SIGINT)  # to the caller; `run` passes it to the container
    assert proc.stdout.read() == "got-int\n"
    assert proc.wait(timeout=60) == 9
    proc.stdout.close()
    # kill -9 of the caller: its worker goes too, as the CLI's own process would have
    follower, worker = warm.served(env, run_script(TICKER), "tick 0\n")
    assert follower.stdout is not None
    follower.kill()
    follower.wait()
    follower.stdout.close()
    env.wait_for("the worker to end", lambda: not _alive(worker))
    running = env.cli("ps", "-q").stdout.split()
    assert len(running) == 1  # the container runs on under its monitor
    env.cli("rm", "-f", *running)


def test_a_caller_it_cannot_stand_in_for_runs_the_cli_itself(env: Env, warm: Warm) -> None:
    warm.start(env)
    env.cli("run", "-d", "--name", "ticker", IMAGE, "sh", "-c", TICKER)
    # another mount namespace: the worker's mounts would land in the wrong one
    other_ns = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", PORTSIDE, "logs", "-f", "ticker"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    # other interpreter settings: fixed when the warm CLI started
    other_locale = subprocess.Popen(
        [PORTSIDE, "logs", "-f", "ticker"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "LC_ALL": "C"},
    )
    try:
        for proc in (other_ns, other_locale):
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"tick 0\n"
        assert warm.workers() == []
        for proc in (other_ns, other_locale):  # each follows the log in its own process
            # (it prints what is there, then opens the log to follow it: wait for the open)
            env.wait_for(
                f"pid {proc.pid} to follow the log itself",
                functools.partial(_has_open, proc.pid, "ctr.log"),
            )
    finally:
        env.cli("stop", "-t", "0", "ticker")
        for proc in (other_ns, other_locale):
            proc.communicate(timeout=60)
            assert proc.returncode == 0


def test_a_stale_warm_cli_leaves_and_an_idle_one_exits(
    env: Env, warm: Warm, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = warm.start(env)
    # a caller whose code differs (as after an edit of any source file)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.connect(str(warm.dir / "cli.sock"))
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, 0, 0))
        sock.sendmsg(
            [b"1\0not the code it loaded\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)]
        )
        assert sock.recv(64) == b"S"
    env.wait_for("the stale one to go", lambda: not _alive(pid))
    assert not (warm.dir / "cli.sock").exists()
    # the next call runs itself and starts a fresh one, which leaves when idle
    monkeypatch.setenv("PORTSIDE_WARM_IDLE", "2")
    fresh = warm.start(env)
    assert fresh != pid
    env.wait_for("the idle one to exit", lambda: not _alive(fresh))
    assert not (warm.dir / "cli.sock").exists()
    assert env.cli("ps", "-a").returncode == 0  # and callers run the CLI themselves again


def test_portside_warm_0_keeps_every_call_in_its_own_process(
    env: Env, warm: Warm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTSIDE_WARM", "0")
    assert env.cli("run", "--rm", IMAGE, "echo", "plain").stdout == "plain\n"
    assert env.cli("version").returncode == 0
    assert not warm.dir.exists()  # none was started


def _has_open(pid: int, suffix: str) -> bool:
    """Whether process `pid` has a file whose path ends with `suffix` open now."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # an fd closed while we list them
            if os.readlink(fd).endswith(suffix):
                return True
    return False

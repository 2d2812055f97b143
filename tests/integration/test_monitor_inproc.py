"""portside-runtime in a forked child of the monitor (inproc.py) against the exec'ed runtime.

Every scenario runs twice, once with `runtime_inprocess` (the default) and once
with it off, and the two results must be the same: exit codes, the log, the
runtime's error line, a pty, stdin, healthcheck probes and stop signals.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.errors import RuntimeFailure
from portside.monitor import inproc
from tests.integration.test_monitor_support import Monitors, log_lines, wait_for

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.timeout(120)]

SRC = str(Path(inproc.__file__).resolve().parents[2])
LAUNCHER = (Path(__file__).resolve().parents[2] / "scripts" / "portside-runtime.in").read_text()


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Monitors]:
    from tests.conftest import need_root

    need_root()
    m = Monitors(tmp_path, "portside-runtime")
    try:
        yield m
    finally:
        m.cleanup()


def _messages(path: str) -> list[str]:
    """The log without its timestamps: `STREAM TAG MESSAGE` per line."""
    return [line.split(" ", 1)[1] for line in log_lines(path)]


def both(own: Monitors, scenario: Callable[[Monitors, bool], Any]) -> Any:
    """Run the scenario with the fork path and with exec; they must agree."""
    forked = scenario(own, True)
    execed = scenario(own, False)
    assert forked == execed
    return forked


def _run(own: Monitors, fork: bool, args: list[str], **overrides: Any) -> tuple[int, list[str]]:
    handle = own.start(args, runtime_inprocess=fork, **overrides)
    status = handle.wait(timeout=60)
    return status.exit_code, _messages(handle.config.log_path)


# -- choosing the fork path ------------------------------------------------------


def _launcher(where: Path, src: str) -> str:
    path = where / "portside-runtime"
    path.write_text(LAUNCHER.replace("@PYTHON@", sys.executable).replace("@SRC@", src))
    path.chmod(0o755)
    return str(path)


def test_our_launcher_runs_in_process_another_trees_does_not(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert inproc.is_own_runtime(_launcher(tmp_path / "a", SRC))
    assert not inproc.is_own_runtime(_launcher(tmp_path / "b", str(tmp_path)))


def test_a_console_script_counts_when_its_venv_imports_our_tree(tmp_path: Path) -> None:
    for name, tree in (("ours", SRC), ("theirs", str(tmp_path))):
        venv = tmp_path / name
        site = venv / "lib" / "python3.11" / "site-packages"
        site.mkdir(parents=True)
        (venv / "bin").mkdir()
        (site / "__editable__.portside-0.1.0.pth").write_text(tree + "\n")
        script = venv / "bin" / "portside-runtime"
        script.write_text(
            f"#!{venv}/bin/python\nimport sys\n"
            "from portside.runtime.cli.main import main\n"
            "if __name__ == '__main__':\n    sys.exit(main())\n"
        )
        script.chmod(0o755)
        assert inproc.is_own_runtime(str(script)) == (name == "ours")


def test_other_runtimes_and_the_switch_keep_exec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not inproc.is_own_runtime(shutil.which("runc") or "/usr/sbin/runc")
    assert not inproc.is_own_runtime(str(tmp_path / "missing"))
    monkeypatch.setenv(inproc.EXEC_ENV, "1")
    (tmp_path / "c").mkdir()
    assert not inproc.is_own_runtime(_launcher(tmp_path / "c", SRC))


def test_runtime_code_changed_on_disk_is_exec_ed_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zygote outlives an edit or upgrade of the runtime: its forks must not run old code."""
    module = tmp_path / "mod.py"
    module.write_text("x = 1\n")
    st = module.stat()
    monkeypatch.setattr(inproc, "_loaded", [(str(module), st.st_mtime_ns, st.st_size)])
    assert inproc.current()
    module.write_text("x = 22\n")
    assert not inproc.current()
    module.unlink()
    assert not inproc.current()


def test_preload_records_the_runtime_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inproc, "_loaded", [])
    inproc.preload()
    files = {path for path, _, _ in inproc._loaded}
    assert any(path.endswith("runtime/cli/create.py") for path in files)
    assert not any("/monitor/" in path for path in files)  # the zygote's own tag covers those
    assert inproc.current()


# -- the same results either way -------------------------------------------------


def test_exit_code_and_both_streams(own: Monitors) -> None:
    code, lines = both(
        own, lambda m, fork: _run(m, fork, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    )
    assert code == 3
    assert lines == ["stdout F out", "stderr F err"]


@pytest.mark.parametrize("zygote", [False, True], ids=["direct", "zygote"])
def test_the_fork_path_really_forks(
    own: Monitors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zygote: bool
) -> None:
    """The runtime's own module dump: a forked runtime still holds the monitor's modules."""
    dump = tmp_path / "modules.txt"
    monkeypatch.setenv("PORTSIDE_RUNTIME_DUMP_MODULES", str(dump))
    seen = {}
    for fork in (True, False):
        handle = own.start(["true"], zygote=zygote, runtime_inprocess=fork)
        assert handle.wait(timeout=60).exit_code == 0
        wait_for(lambda h=handle: not h.alive(), "the monitor to leave")  # its last `delete`
        seen[fork] = set(dump.read_text().split())
        for pid in own.zygote_pids():  # the next zygote gets the env anew
            os.kill(pid, 9)
            # gone for good before the next request: one sent while the kill is still
            # landing would sit in the dying socket's queue and be lost with it
            wait_for(lambda p=pid: not Path(f"/proc/{p}").exists(), "the zygote to be gone")
    assert "portside.monitor.main" in seen[True]
    assert "portside.monitor.main" not in seen[False]
    assert "portside.runtime.cli.delete" in seen[True] & seen[False]


def test_the_runtimes_error_line(own: Monitors) -> None:
    def scenario(m: Monitors, fork: bool) -> str:
        with pytest.raises(RuntimeFailure) as info:
            m.start(["/no/such/program"], runtime_inprocess=fork)
        return re.sub(r"\bt[0-9a-f]{12}\b", "ID", str(info.value))

    message = both(own, scenario)
    assert "portside-runtime create failed" in message
    assert "/no/such/program" in message


def test_stdin_through_attach(own: Monitors) -> None:
    def scenario(m: Monitors, fork: bool) -> tuple[int, list[str]]:
        handle = m.start(["cat"], stdin=True, defer_start=True, runtime_inprocess=fork)
        with handle.attach() as conn:
            handle.start()
            conn.send(b"hello\n")
            conn.read_until(b"hello")
            conn.close_stdin()
        return handle.wait(timeout=60).exit_code, _messages(handle.config.log_path)

    assert both(own, scenario) == (0, ["stdout F hello"])


def test_a_pty(own: Monitors) -> None:
    code, lines = both(own, lambda m, fork: _run(m, fork, ["tty"], terminal=True))
    assert code == 0
    assert lines == ["stdout F /dev/pts/0"]


def test_healthcheck_probes_and_stop(own: Monitors) -> None:
    def scenario(m: Monitors, fork: bool) -> tuple[str, int]:
        handle = m.start(
            ["sleep", "1000"],
            healthcheck={"test": ["CMD-SHELL", "test -d /tmp"], "interval": 0.2, "retries": 1},
            runtime_inprocess=fork,
        )
        health = wait_for(
            lambda: (handle.health() or {}).get("status") == "healthy" and handle.health(),
            "a healthy probe",
        )
        handle.stop("KILL")
        return health["status"], handle.wait(timeout=60).exit_code

    assert both(own, scenario) == ("healthy", 137)

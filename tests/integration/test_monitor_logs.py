"""The monitor's log writers and exit records, with real containers under runc."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from portside.errors import RuntimeFailure
from tests.integration.test_monitor_support import Monitors, log_lines, monitors

__all__ = ["monitors"]

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.timeout(120)]

CRI_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([PF]) (.*)$")
# the partial piece is flushed before the sleep, so it arrives as its own chunk
PROGRAM = "echo out1; echo err1 >&2; printf part; sleep 0.3; echo rest; exit 3"


def test_cri_log_has_both_streams_and_partial_lines(monitors: Monitors) -> None:
    handle = monitors.start(["sh", "-c", PROGRAM])
    status = handle.wait(timeout=60)
    assert status.exit_code == 3
    entries = [CRI_LINE.match(line) for line in log_lines(handle.config.log_path)]
    assert all(entries), log_lines(handle.config.log_path)
    got = [(m.group(2), m.group(3), m.group(4)) for m in entries if m]
    assert ("stdout", "F", "out1") in got
    assert ("stderr", "F", "err1") in got
    assert ("stdout", "P", "part") in got
    assert ("stdout", "F", "rest") in got
    assert got.index(("stdout", "P", "part")) < got.index(("stdout", "F", "rest"))


def test_json_file_log_is_dockers_format(monitors: Monitors) -> None:
    handle = monitors.start(
        ["sh", "-c", PROGRAM], log={"driver": "json-file", "path": str(monitors.tmp_path / "j.log")}
    )
    handle.wait(timeout=60)
    docs = [json.loads(line) for line in log_lines(handle.config.log_path)]
    assert {"log": "out1\n", "stream": "stdout"}.items() <= docs[0].items() or any(
        d["log"] == "out1\n" and d["stream"] == "stdout" for d in docs
    )
    assert any(d["log"] == "err1\n" and d["stream"] == "stderr" for d in docs)
    assert any(d["log"] == "part" and d["stream"] == "stdout" for d in docs)  # partial: no \n
    assert all(set(d) == {"log", "stream", "time"} for d in docs)
    assert all(re.fullmatch(r"\d{4}-.*\.\d{9}Z", d["time"]) for d in docs)


def test_rotation_keeps_max_file_files(monitors: Monitors) -> None:
    count = 400
    script = f"i=0; while [ $i -lt {count} ]; do echo line-$i-abcdefghijklmnop; i=$((i+1)); done"
    handle = monitors.start(
        ["sh", "-c", script],
        log={
            "driver": "k8s-file",
            "max_size": 4000,
            "max_file": 3,
            "path": str(monitors.tmp_path / "r.log"),
        },
    )
    assert handle.wait(timeout=60).exit_code == 0
    path = Path(handle.config.log_path)
    files = sorted(path.parent.glob(path.name + "*"))
    assert [f.name for f in files] == [path.name, path.name + ".1", path.name + ".2"]
    assert all(f.stat().st_size <= 4000 for f in files)
    kept = [line.split(" ", 3)[3] for f in reversed(files) for line in log_lines(f)]
    # the newest lines survive, in order, and the oldest were rotated away
    assert kept[-1] == f"line-{count - 1}-abcdefghijklmnop"
    numbers = [int(line.split("-")[1]) for line in kept]
    assert numbers == list(range(numbers[0], count))
    assert numbers[0] > 0


def test_exit_file_records_code_and_times(monitors: Monitors) -> None:
    handle = monitors.start(["sh", "-c", "exit 3"])
    status = handle.wait(timeout=60)
    assert status.exit_code == 3
    assert not status.oom_killed
    assert status.started_at <= status.finished_at
    doc = json.loads(Path(handle.config.exit_file).read_text())
    assert doc["exit_code"] == 3 and doc["id"] == handle.id
    assert handle.state() is not None and handle.state()["status"] == "exited"  # type: ignore[index]
    # the monitor deleted the container from the runtime and exited
    assert monitors.runtime_state(handle.id) is None


def test_stop_escalates_to_sigkill_and_records_128_plus_n(monitors: Monitors) -> None:
    # PID 1 of a namespace ignores SIGTERM it has no handler for, so only SIGKILL ends it
    handle = monitors.start(["sleep", "1000"], restart="always")
    handle.stop("TERM", timeout=0.5)
    status = handle.wait(timeout=60)
    assert (status.exit_code, status.signal) == (137, 9)
    assert status.restart_count == 0  # a stop is never followed by a restart


def test_runtime_error_comes_back_as_one_line(monitors: Monitors) -> None:
    with pytest.raises(RuntimeFailure) as info:
        monitors.start(["/no/such/program"])
    message = str(info.value)
    assert "\n" not in message
    assert "/no/such/program" in message


def test_bad_config_is_one_line(monitors: Monitors) -> None:
    with pytest.raises(Exception, match=r"log.driver 'syslog'"):
        monitors.start(["true"], log={"driver": "syslog"})

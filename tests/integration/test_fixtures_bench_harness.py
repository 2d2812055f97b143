"""The benchmark runner's machinery, on toy commands: `make bench` must keep printing its table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from benchmarks import harness, run
from benchmarks.harness import Case, Session

from tests.conftest import need_tool


def test_discovered_cases_are_well_formed() -> None:
    cases = run.discover()
    names = [case.name for case in cases]
    assert len(names) == len(set(names))
    for case in cases:
        assert case.peers, case.name
        assert set(case.needs) <= set(harness.SETUPS), case.name
        assert case.view in ("host", "v1")
        labels = [label for label, _ in case.commands()]
        assert "portside" not in case.peers and len(labels) == len(set(labels))
    covered = {peer for case in cases for peer in case.peers}
    assert {"runc", "crun", "skopeo", "umoci", "podman"} <= covered


def test_quick_mode_cuts_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    case = Case(name="c", peers={"p": "true"}, runs=20, warmup=3)
    monkeypatch.setattr(harness, "QUICK", False)
    monkeypatch.setenv("BENCH_RUNS", "7")
    assert case.run_counts() == (7, 3)
    monkeypatch.setattr(harness, "QUICK", True)
    assert case.run_counts() == (3, 1)


def test_v1_view_wraps_hyperfine_in_a_private_mount_namespace(tmp_path: Path) -> None:
    case = Case(name="c", peers={"a": "true"}, prepare_for={"a": "echo p"}, view="v1")
    argv = run.hyperfine_argv(case, tmp_path / "x.json")
    assert argv[argv.index("--prepare") + 1] == "echo p"
    if run.CGROUP2_HYBRID.is_mount():
        assert argv[:4] == ["unshare", "-m", "--propagation", "private"]
    else:
        assert argv[0] == "hyperfine"


def test_run_case_times_side_by_side_and_explains_failures(tmp_path: Path) -> None:
    need_tool("hyperfine")
    case = Case(
        name="toy",
        portside="sleep 0.02",
        peers={"fast": "sleep 0.01", "broken": "echo 'no such thing' >&2; exit 3"},
        runs=2,
        warmup=0,
    )
    timings = run.run_case(case, Session(), tmp_path)
    assert [t.label for t in timings] == ["portside", "fast", "broken"]
    portside, fast, broken = timings
    assert portside.median is not None and fast.median is not None
    assert len(portside.times) == 2 and not portside.error
    assert broken.median is None and "exit 3: no such thing" in broken.error
    text = run.table([(case, timings)])
    assert "| toy | " in text and "| fast | " in text and "| broken | failed | — |" in text
    ratio = text.splitlines()[2].rsplit("|", 2)[-2].strip()
    assert float(ratio) == pytest.approx(portside.median / fast.median, abs=0.01)


def test_table_without_portside_prints_peer_rows() -> None:
    case = Case(name="peer only", peers={"runc": "true", "crun": "true"})
    timings = [run.Timing("runc", 0.0412, [0.0412]), run.Timing("crun", 1.5, [1.5])]
    lines = run.table([(case, timings)]).splitlines()
    assert lines[2] == "| peer only | — | runc | 41.2 ms | — |"
    assert lines[3] == "| peer only | — | crun | 1.50 s | — |"


def test_interleaved_case_runs_each_command_once_per_round_with_fresh_ids(tmp_path: Path) -> None:
    """Every round runs each command once (the log shows the rounds interleaved: no
    command's runs all come before another's), RUN_ID is a new id each run, warm-up
    rounds are not timed, and a failing command names itself."""
    log = tmp_path / "log"
    record = f"sh -c 'echo $0 >> {log}'"
    case = Case(
        name="toy interleaved",
        portside=f"{record} p-{harness.RUN_ID}",
        peers={"peer": f"{record} q-{harness.RUN_ID}"},
        runs=4,
        warmup=1,
        interleaved=True,
    )
    timings = run.run_case(case, Session(), tmp_path)
    assert [t.label for t in timings] == ["portside", "peer"]
    assert all(len(t.times) == 4 and t.median is not None and not t.error for t in timings)
    lines = log.read_text().split()
    assert len(lines) == 10 and len(set(lines)) == 10  # 5 rounds x 2, every id new
    kinds = [line[0] for line in lines]
    for n in range(5):
        assert sorted(kinds[2 * n : 2 * n + 2]) == ["p", "q"]
    assert "$RANDOM" not in log.read_text()
    broken = Case(
        name="b", peers={"bad": "sh -c 'echo nope >&2; exit 4'"}, runs=1, interleaved=True
    )
    (timing,) = run.run_case(broken, Session(), tmp_path)
    assert timing.median is None and "bad failed (4)" in timing.error and "nope" in timing.error


def test_interleaved_commands_see_the_case_environment_and_ours_is_untouched(
    tmp_path: Path,
) -> None:
    check = "sh -c 'test \"$PORTSIDE_TOY_ENV\" = seen || { echo unset >&2; exit 3; }'"
    for env, works in (({"PORTSIDE_TOY_ENV": "seen"}, True), ({}, False)):
        case = Case(name="env", peers={"peer": check}, runs=2, interleaved=True, env=env)
        (timing,) = run.run_case(case, Session(), tmp_path)
        assert (timing.median is not None) == works, timing.error
        assert "PORTSIDE_TOY_ENV" not in os.environ
    assert "unset" in timing.error

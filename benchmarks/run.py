"""`make bench`: time portside beside the peer tools and print a table of medians and ratios.

Every `benchmarks/bench_*.py` module exposes `cases() -> list[Case]`. Each case's commands
(portside's, when it has one, and every peer's) are timed in ONE hyperfine invocation, so
they share the machine's conditions (or, for a case marked `interleaved`, in rounds of one
run each: harness.time_interleaved); ratios are portside median / peer median.

Environment: BENCH_QUICK=1 (3 runs per command), BENCH_RUNS=N (override run counts),
BENCH_CASES=word,word (only cases whose name contains one of the words), PEERS_DIR.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness
from benchmarks.harness import Case, Session, log

CGROUP2_HYBRID = Path("/sys/fs/cgroup/unified")


@dataclass
class Timing:
    label: str
    median: float | None  # seconds; None when the command failed
    times: list[float]
    error: str = ""


LOAD_ERRORS: list[str] = []  # modules that could not give their cases; reported as failures


def discover() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        try:
            module = importlib.import_module(f"benchmarks.{path.stem}")
            make_cases = getattr(module, "cases", None)
            if make_cases is None:
                log(f"{path.name} has no cases(): not part of the table (run it on its own)")
                continue
            cases.extend(make_cases())
        except Exception as err:  # one broken module must not hide every other figure
            LOAD_ERRORS.append(f"- {path.name}: {type(err).__name__}: {err}")
            log(f"{path.name} failed to load: {err}")
    wanted = [w.strip() for w in os.environ.get("BENCH_CASES", "").split(",") if w.strip()]
    if wanted:
        cases = [c for c in cases if any(w in c.name for w in wanted)]
    return cases


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-").lower()


def hyperfine_argv(case: Case, export: Path) -> list[str]:
    runs, warmup = case.run_counts()
    argv = ["hyperfine", "--style", "basic", "--export-json", str(export),
            "--runs", str(runs), "--warmup", str(warmup), "--ignore-failure"]  # fmt: skip
    argv += ["--shell=bash"] if case.shell else ["-N"]
    commands = case.commands()
    if any(case.prepare_of(label) for label, _ in commands):
        for label, _ in commands:
            argv += ["--prepare", case.prepare_of(label) or "true"]
    for label, command in commands:
        argv += ["--command-name", label, command]
    if case.view == "v1" and CGROUP2_HYBRID.is_mount():
        # crun 1.8 refuses hybrid cgroups: hide the cgroup2 mount in a private namespace
        inner = f'umount {CGROUP2_HYBRID} && exec "$@"'
        argv = ["unshare", "-m", "--propagation", "private", "bash", "-c", inner, "_", *argv]
    return argv


def diagnose(case: Case, label: str, command: str, env: dict[str, str]) -> str:
    """Run a command that failed under hyperfine once more, to say why in the report."""
    prepare = case.prepare_of(label)
    argv = ["bash", "-c", f"{prepare}\n{command}" if prepare else command]
    if case.view == "v1" and CGROUP2_HYBRID.is_mount():
        argv = ["unshare", "-m", "--propagation", "private", "bash", "-c",
                f"umount {CGROUP2_HYBRID} && exec \"$@\"", "_", *argv]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    output = (result.stderr.strip() or result.stdout.strip())[-300:]
    return f"exit {result.returncode}: {output}".replace("\n", " ")


def run_case(case: Case, session: Session, outdir: Path) -> list[Timing]:
    env = {**os.environ, **case.env}
    env["PORTSIDE_ROOT"] = str(harness.PORTSIDE_ROOT)
    env["PORTSIDE_RUNROOT"] = str(harness.PORTSIDE_RUNROOT)
    for need in case.needs:
        env.update(session.env.get(need, {}))
    if case.setup:
        subprocess.run(["bash", "-c", case.setup], env=env, check=True)
    if case.interleaved:
        return run_interleaved(case, env, outdir)
    export = outdir / f"{slug(case.name)}.json"
    try:
        result = subprocess.run(hyperfine_argv(case, export), env=env, text=True, check=False)
    finally:
        if case.cleanup:
            subprocess.run(["bash", "-c", case.cleanup], env=env, check=False)
    if result.returncode != 0 or not export.exists():
        return [Timing(label, None, [], "hyperfine failed") for label, _ in case.commands()]
    data = json.loads(export.read_text())["results"]
    timings = []
    for (label, command), row in zip(case.commands(), data, strict=True):
        codes = row.get("exit_codes") or []
        if any(code != 0 for code in codes):
            error = f"{sum(c != 0 for c in codes)}/{len(codes)} runs failed; then "
            error += diagnose(case, label, command, env)
            timings.append(Timing(label, None, list(row["times"]), error))
        else:
            timings.append(Timing(label, float(statistics.median(row["times"])), row["times"]))
    return timings


def run_interleaved(case: Case, env: dict[str, str], outdir: Path) -> list[Timing]:
    runs, warmup = case.run_counts()
    try:
        times = harness.time_interleaved(case, runs, warmup, env)
    except RuntimeError as err:
        return [Timing(label, None, [], str(err)) for label, _ in case.commands()]
    finally:
        if case.cleanup:
            subprocess.run(["bash", "-c", case.cleanup], env=env, check=False)
    (outdir / f"{slug(case.name)}.json").write_text(json.dumps(times))
    return [Timing(label, statistics.median(times[label]), times[label]) for label in times]


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "failed"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def table(results: list[tuple[Case, list[Timing]]]) -> str:
    lines = [
        "| case | portside median | peer | peer median | ratio (portside/peer) |",
        "|---|---:|---|---:|---:|",
    ]
    for case, timings in results:
        by_label = {t.label: t for t in timings}
        mine = by_label.get("portside")
        ours = fmt(mine.median) if mine else "—"
        for peer in case.peers:
            theirs = by_label[peer]
            ratio = "—"
            if mine and mine.median and theirs.median:
                ratio = f"{mine.median / theirs.median:.2f}"
            lines.append(f"| {case.name} | {ours} | {peer} | {fmt(theirs.median)} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    cases = discover()
    if not cases:
        print("no benchmark case matched", file=sys.stderr)
        return 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = harness.RESULTS / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    harness.WORK.mkdir(parents=True, exist_ok=True)
    session = Session()
    results: list[tuple[Case, list[Timing]]] = []
    try:
        for case in cases:
            for need in case.needs:
                if need not in session.done:
                    harness.SETUPS[need](session)
                    session.done.add(need)
            runs, _ = case.run_counts()
            log(f"{case.name}: {len(case.commands())} commands x {runs} runs")
            results.append((case, run_case(case, session, outdir)))
    finally:
        harness.teardown(session)
    report = table(results)
    notes = [
        f"- {case.name}: {case.note}{'; timed in interleaved rounds' if case.interleaved else ''}"
        for case, _ in results
        if case.note or case.interleaved
    ]
    failures = LOAD_ERRORS + [
        f"- {case.name} / {t.label}: {t.error}" for case, ts in results for t in ts if t.error
    ]
    quick = " (BENCH_QUICK: 3 runs per command)" if harness.QUICK else ""
    text = f"Medians of hyperfine runs (or interleaved rounds: see the notes), {stamp}{quick}.\n\n"
    text += f"{report}\n"
    if notes:
        text += "\nNotes:\n" + "\n".join(notes) + "\n"
    if failures:
        text += "\nFailures:\n" + "\n".join(failures) + "\n"
    (outdir / "table.md").write_text(text)
    summary = {
        case.name: {t.label: {"median_s": t.median, "times_s": t.times, "error": t.error}
                    for t in timings}
        for case, timings in results
    }  # fmt: skip
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2))
    print()
    print(text)
    print(f"raw hyperfine JSON: {outdir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

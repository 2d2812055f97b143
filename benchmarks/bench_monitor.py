"""Memory and start latency of portside's per-container monitor beside conmon's, in one run.

For N idle busybox containers (`sleep 1000`, runc unless --runtime, no network namespace) it
starts one monitor each and sums the PSS (/proc/PID/smaps_rollup) of every
process that stays per container: our monitors (plus the zygote, amortised,
in zygote mode) against conmon started the way podman starts it (a sync pipe,
then `runc start`). Prints a table of means and the ratios; needs root.

    .venv/bin/python benchmarks/bench_monitor.py [--count 20] [--modes direct,zygote,conmon]
        [--runtime runc|PATH] [--by-mapping]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from portside.monitor.client import spawn

APPLETS = ("sh", "sleep", "true", "yes", "head")
LINES = 300_000  # of 71 bytes: about 21 MB of output for the throughput run


def make_bundle(where: Path, spec: dict[str, Any]) -> Path:
    (where / "rootfs" / "bin").mkdir(parents=True)
    for d in ("proc", "dev", "sys", "tmp"):
        (where / "rootfs" / d).mkdir()
    shutil.copy("/bin/busybox", where / "rootfs" / "bin" / "busybox")
    for applet in APPLETS:
        (where / "rootfs" / "bin" / applet).symlink_to("busybox")
    (where / "config.json").write_text(json.dumps(spec))
    return where


def base_spec() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["runc", "spec", "--bundle", d], check=True)
        spec: dict[str, Any] = json.loads(Path(d, "config.json").read_text())
    spec["process"]["args"] = ["sleep", "1000"]
    spec["process"]["terminal"] = False
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    return spec


def smaps(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])
    return out


class Run:
    def __init__(self, base: Path, mode: str, runtime: str = "runc") -> None:
        self.base = base / mode
        self.base.mkdir()
        self.mode = mode
        self.runtime = os.path.abspath(shutil.which(runtime) or runtime)
        self.runtime_root = self.base / "runtime"
        self.ids: list[str] = []
        self.monitor_pids: list[int] = []
        self.extra_pids: list[int] = []  # shared processes (the zygote), amortised
        self.latencies: list[float] = []

    def start(self, spec: dict[str, Any], i: int | str) -> Path:
        """Start container i; returns its state directory (the exit file appears there)."""
        cid = f"bm{self.mode[0]}{i}"
        bundle = make_bundle(self.base / "b" / cid, spec)
        state = self.base / "s" / cid
        t0 = time.perf_counter()
        if self.mode == "conmon":
            pid = self._conmon(cid, bundle, state)
        else:
            handle = spawn(
                {
                    "id": cid,
                    "bundle": str(bundle),
                    "runtime": self.runtime,
                    "runtime_args": ["--root", str(self.runtime_root)],
                    "state_dir": str(state),
                },
                zygote_dir=str(self.base) if self.mode == "zygote" else None,
            )
            pid = handle.pid
        self.latencies.append(time.perf_counter() - t0)
        self.ids.append(cid)
        self.monitor_pids.append(pid)
        return state

    def throughput(self, spec: dict[str, Any]) -> float:
        """MB/s of container output turned into log lines, start to exit file."""
        talk = json.loads(json.dumps(spec))
        line = "0123456789" * 7
        talk["process"]["args"] = ["sh", "-c", f"yes {line} | head -n {LINES}"]
        t0 = time.perf_counter()
        state = self.start(talk, "t")
        exit_file = state / f"bm{self.mode[0]}t"
        while not exit_file.exists():
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        return LINES * (len(line) + 1) / elapsed / 1e6

    def _conmon(self, cid: str, bundle: Path, state: Path) -> int:
        state.mkdir(parents=True)
        sock_dir = self.base / "sock"
        sock_dir.mkdir(exist_ok=True)
        read_end, write_end = os.pipe()
        env = dict(os.environ, _OCI_SYNCPIPE=str(write_end))
        root = ["--runtime-arg", "--root", "--runtime-arg", str(self.runtime_root)]
        subprocess.run(
            [
                *("conmon", "--api-version", "1", "-c", cid, "-u", cid, "-n", cid),
                *("-r", self.runtime, *root, "-b", str(bundle)),
                *("-p", str(state / "pid"), "-P", str(state / "conmon.pid")),
                *("-l", f"k8s-file:{state / 'ctr.log'}", "--exit-dir", str(state)),
                *("--socket-dir-path", str(sock_dir), "--log-level", "error"),
            ],
            env=env,
            pass_fds=(write_end,),
            check=True,
        )
        os.close(write_end)
        with os.fdopen(read_end) as sync:
            reply = json.loads(sync.readline())
        if reply.get("data", -1) < 0:
            raise RuntimeError(f"conmon: {reply}")
        runtime = [self.runtime, "--root", str(self.runtime_root)]
        subprocess.run([*runtime, "start", cid], check=True)
        return int((state / "conmon.pid").read_text())

    def measure(self) -> dict[str, float]:
        per = [smaps(pid) for pid in self.monitor_pids]
        shared = [smaps(pid) for pid in self.extra_pids]
        n = len(per)
        pss = sum(p["Pss"] for p in per) + sum(s["Pss"] for s in shared)
        return {
            "rss_kb": sum(p["Rss"] for p in per) / n,
            "pss_kb": pss / n,
            "private_dirty_kb": sum(p["Private_Dirty"] for p in per) / n,
            "start_ms": statistics.median(self.latencies) * 1000,
        }

    def by_mapping(self) -> dict[str, float]:
        """Mean Private_Dirty kB per mapping of the monitors: where their own pages are.

        `[anon]` is mostly the allocator's arenas, `python3.11` the interpreter's
        static data, `[heap]` malloc (objects over 512 bytes: code, big dicts).
        """
        total: dict[str, int] = {}
        for pid in self.monitor_pids:
            name = "[anon]"
            for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
                fields = line.split()
                if "-" in fields[0] and not fields[0].endswith(":"):
                    name = fields[5].rsplit("/", 1)[-1] if len(fields) > 5 else "[anon]"
                elif fields[0] == "Private_Dirty:":
                    total[name] = total.get(name, 0) + int(fields[1])
        return {k: v / len(self.monitor_pids) for k, v in total.items()}

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run(
                [self.runtime, "--root", str(self.runtime_root), "delete", "-f", cid],
                capture_output=True,
                check=False,
            )
        for pid in self.monitor_pids + self.extra_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--modes", default="direct,zygote,conmon")
    parser.add_argument(
        "--runtime",
        default="runc",
        help="runc (default), or e.g. .venv/bin/portside-runtime: the monitors then run its "
        "create and start in forked children, and conmon execs it",
    )
    parser.add_argument(
        "--by-mapping",
        action="store_true",
        help="also print each mode's private dirty kB per mapping (the largest five)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_monitor needs root (it runs containers)")
    spec = base_spec()
    base = Path(tempfile.mkdtemp(prefix="bm", dir="/tmp"))
    results: dict[str, dict[str, float]] = {}
    mappings: dict[str, str] = {}
    try:
        for mode in args.modes.split(","):
            run = Run(base, mode, args.runtime)
            try:
                for i in range(args.count):
                    run.start(spec, i)
                if mode == "zygote":
                    run.extra_pids = zygote_pids(run.base)
                time.sleep(1)  # let every monitor settle into its idle loop
                results[mode] = run.measure()
                if args.by_mapping:
                    top = sorted(run.by_mapping().items(), key=lambda kv: -kv[1])[:5]
                    mappings[mode] = "  ".join(f"{k} {v:.0f}" for k, v in top)
                results[mode]["mb_s"] = run.throughput(spec)
            finally:
                run.cleanup()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ref = results.get("conmon")
    print(
        f"{args.count} idle containers, means per container (kB; start: median ms; "
        f"log: MB/s of {LINES} lines, start to exit file)"
    )
    head = f"{'monitor':<10}{'RSS':>8}{'PSS':>8}{'priv.dirty':>12}{'start':>8}{'log':>8}"
    print(head + f"{'PSS/conmon':>12}")
    for mode, r in results.items():
        ratio = f"{r['pss_kb'] / ref['pss_kb']:.2f}x" if ref else "-"
        print(
            f"{mode:<10}{r['rss_kb']:>8.0f}{r['pss_kb']:>8.0f}{r['private_dirty_kb']:>12.0f}"
            f"{r['start_ms']:>8.1f}{r['mb_s']:>8.1f}{ratio:>12}"
        )
    for mode, text in mappings.items():
        print(f"{mode:<10}private dirty by mapping (kB): {text}")


def zygote_pids(directory: Path) -> list[int]:
    """The zygotes and their children (the forker): shared by every monitor, amortised."""
    pids = [int(p.read_text()) for p in directory.glob("monitor-zygote-*.pid")]
    for pid in list(pids):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
    return pids


if __name__ == "__main__":
    main()

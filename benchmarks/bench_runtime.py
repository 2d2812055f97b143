"""OCI runtime `run` of /bin/true in a busybox bundle: portside-runtime beside runc and crun.

As runtimes.sh times it: the spec's default namespaces (pid, net, ipc, uts, mount), and the
same bundle without the network namespace. Python modules are byte-compiled first (this
environment may set PYTHONDONTWRITEBYTECODE): an installed portside always has them.

The cases are `interleaved`: every round runs each command once, in a shuffled order, so a
drift of the machine hits them alike (hyperfine runs all of one command's runs before the
next's, and on this shared 2-core machine such a drift moved a ratio by 10-20%).
`python benchmarks/bench_runtime.py [ROUNDS]` prints the same comparison on its own (after
one `BENCH_CASES=runtime benchmarks/run.py`, which prepares the bundles and the module
bundle).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    BUSYBOX_BUNDLE,
    PORTSIDE_RUNTIME,
    REPO,
    RUN_ID,
    WORK,
    Case,
    time_interleaved,
)

NONET = WORK / "bundle-busybox-nonet"
STATE = WORK / "portside-runtime-state"
PYTHON = REPO / ".venv" / "bin" / "python"
ROUNDS = 60

# compile once (and the launcher's module bundle, as `make bytecode` does); derive the
# no-netns bundle from the default one (same rootfs)
SETUP = (
    f"{PYTHON} -m compileall -q {REPO / 'src'} >/dev/null && "
    f"{PYTHON} -m portside.runtime.hotpath {REPO / '.venv' / 'lib' / 'portside-runtime.bundle'} && "
    f"mkdir -p {NONET} && "
    f"jq --arg rf {BUSYBOX_BUNDLE}/rootfs "
    "'.root.path=$rf | .linux.namespaces |= map(select(.type!=\"network\"))' "
    f"{BUSYBOX_BUNDLE}/config.json > {NONET}/config.json"
)


def _portside(bundle: object) -> str:
    """`run` with a new container id each time; it deletes the container on exit."""
    return f"{PORTSIDE_RUNTIME} --root {STATE} run -b {bundle} {RUN_ID}"


def _case(name: str, bundle: Path, peers: tuple[str, ...], view: str, note: str) -> Case:
    return Case(
        name=name,
        portside=_portside(bundle),
        peers={peer: f"{peer} run -b {bundle} {RUN_ID}" for peer in peers},
        needs=("busybox-bundle",),
        setup=SETUP,
        runs=ROUNDS,
        warmup=3,
        view=view,
        interleaved=True,
        note=note,
    )


def cases() -> list[Case]:
    return [
        _case(
            "runtime run /bin/true (v1 view)",
            BUSYBOX_BUNDLE,
            ("runc", "crun"),
            "v1",
            "private mount namespace without /sys/fs/cgroup/unified (crun needs it)",
        ),
        _case(
            "runtime run /bin/true no netns (v1 view)",
            NONET,
            ("runc", "crun"),
            "v1",
            "the default bundle without the network namespace",
        ),
        _case(
            "runtime run /bin/true (host view)",
            BUSYBOX_BUNDLE,
            ("runc",),
            "host",
            "the machine's hybrid cgroups as they are; crun refuses them",
        ),
    ]


def main(rounds: int) -> None:
    print(f"interleaved, {rounds} rounds; medians in ms; ratio = portside / peer")
    for case in cases():
        times = time_interleaved(case, rounds, warmup=case.warmup)
        ours = statistics.median(times["portside"])
        for label, values in times.items():
            if label == "portside":
                continue
            theirs = statistics.median(values)
            print(
                f"{case.name}: portside {ours * 1000:.1f}, {label} {theirs * 1000:.1f}, "
                f"ratio {ours / theirs:.2f}"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)

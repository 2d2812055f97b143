"""OCI runtime `run` of /bin/true in a busybox bundle: portside-runtime beside runc and crun.

As runtimes.sh times it: the spec's default namespaces (pid, net, ipc, uts, mount), and the
same bundle without the network namespace. Python modules are byte-compiled first (this
environment may set PYTHONDONTWRITEBYTECODE): an installed portside always has them.

On a shared machine whose load drifts, hyperfine (one command's runs, then the next's)
can put the drift into a ratio. `python benchmarks/bench_runtime.py [ROUNDS]` times the
same cases interleaved instead: every round runs each command once, in a shuffled order,
so drift hits them alike (after one `BENCH_CASES=runtime benchmarks/run.py`, which
prepares the bundles and the module bundle).
"""

from __future__ import annotations

import os
import random
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    BUSYBOX_BUNDLE,
    CONTAINER_PREFIX,
    PORTSIDE_RUNTIME,
    REPO,
    WORK,
    Case,
)

# a fresh id per run ($RANDOM needs the bash shell); `run` deletes the container on exit
ID = f"{CONTAINER_PREFIX}$RANDOM$RANDOM"
NONET = WORK / "bundle-busybox-nonet"
STATE = WORK / "portside-runtime-state"
PYTHON = REPO / ".venv" / "bin" / "python"

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
    return f"{PORTSIDE_RUNTIME} --root {STATE} run -b {bundle} {ID}"


def cases() -> list[Case]:
    return [
        Case(
            name="runtime run /bin/true (v1 view)",
            portside=_portside(BUSYBOX_BUNDLE),
            peers={
                "runc": f"runc run -b {BUSYBOX_BUNDLE} {ID}",
                "crun": f"crun run -b {BUSYBOX_BUNDLE} {ID}",
            },
            needs=("busybox-bundle",),
            setup=SETUP,
            view="v1",
            runs=30,
            warmup=3,
            note="private mount namespace without /sys/fs/cgroup/unified (crun needs it)",
        ),
        Case(
            name="runtime run /bin/true no netns (v1 view)",
            portside=_portside(NONET),
            peers={
                "runc": f"runc run -b {NONET} {ID}",
                "crun": f"crun run -b {NONET} {ID}",
            },
            needs=("busybox-bundle",),
            setup=SETUP,
            view="v1",
            runs=30,
            warmup=3,
            note="the default bundle without the network namespace",
        ),
        Case(
            name="runtime run /bin/true (host view)",
            portside=_portside(BUSYBOX_BUNDLE),
            peers={"runc": f"runc run -b {BUSYBOX_BUNDLE} {ID}"},
            needs=("busybox-bundle",),
            setup=SETUP,
            runs=30,
            warmup=3,
            note="the machine's hybrid cgroups as they are; crun refuses them",
        ),
    ]


def _argv(command: str) -> list[str]:
    """A case's command without bash (every command alike): a fresh container id."""
    cid = f"{CONTAINER_PREFIX}{random.randrange(1 << 40)}"
    return shlex.split(command.replace(ID, cid))


def _hide_cgroup2() -> None:
    """The v1 view in this (forked) process: a private mount namespace without the cgroup2
    mount, as run.py makes with unshare(1) for crun."""
    from portside.linux import libc

    libc.unshare(libc.CLONE_NEWNS)
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
    if os.path.ismount("/sys/fs/cgroup/unified"):
        libc.umount2("/sys/fs/cgroup/unified")


def _time_round(commands: list[tuple[str, str]], times: dict[str, list[float]]) -> None:
    order = list(commands)
    random.shuffle(order)
    for label, command in order:
        argv = _argv(command)
        t0 = time.perf_counter()
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"{label} failed ({r.returncode}): {r.stderr.decode()[-300:]}")
        times[label].append(elapsed)


def interleaved(case: Case, rounds: int) -> dict[str, list[float]]:
    """Wall times of each command of `case`, `rounds` of each, interleaved."""
    commands = case.commands()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # its own process: the v1 view changes the mount namespace
        os.close(r)
        code = 0
        try:
            if case.view == "v1":
                _hide_cgroup2()
            times: dict[str, list[float]] = {label: [] for label, _ in commands}
            for _ in range(rounds):
                _time_round(commands, times)
            os.write(w, repr(times).encode())
        except BaseException as err:  # reported by the parent
            os.write(w, repr({"error": str(err)}).encode())
            code = 1
        os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 1 << 16):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    import ast

    result: dict[str, list[float]] = ast.literal_eval(b"".join(chunks).decode())
    if "error" in result:
        raise RuntimeError(str(result["error"]))
    return result


def main(rounds: int) -> None:
    print(f"interleaved, {rounds} rounds; medians in ms; ratio = portside / peer")
    for case in cases():
        times = interleaved(case, rounds)
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

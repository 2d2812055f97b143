"""OCI runtime `run` of /bin/true in a busybox bundle (runc, crun), as runtimes.sh times it."""

from __future__ import annotations

from benchmarks.harness import BUSYBOX_BUNDLE, CONTAINER_PREFIX, Case

# a fresh id per run ($RANDOM needs the bash shell); `run` deletes the container on exit
ID = f"{CONTAINER_PREFIX}$RANDOM$RANDOM"


def cases() -> list[Case]:
    return [
        Case(
            name="runtime run /bin/true (v1 view)",
            portside=None,  # later: f"{PORTSIDE_RUNTIME} run -b {BUSYBOX_BUNDLE} {ID}"
            peers={
                "runc": f"runc run -b {BUSYBOX_BUNDLE} {ID}",
                "crun": f"crun run -b {BUSYBOX_BUNDLE} {ID}",
            },
            needs=("busybox-bundle",),
            view="v1",
            runs=20,
            warmup=3,
            note="private mount namespace without /sys/fs/cgroup/unified (crun needs it)",
        ),
        Case(
            name="runtime run /bin/true (host view)",
            portside=None,  # later: f"{PORTSIDE_RUNTIME} run -b {BUSYBOX_BUNDLE} {ID}"
            peers={"runc": f"runc run -b {BUSYBOX_BUNDLE} {ID}"},
            needs=("busybox-bundle",),
            runs=20,
            warmup=3,
            note="the machine's hybrid cgroups as they are; crun refuses them",
        ),
    ]

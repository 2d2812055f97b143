"""Engine `run --rm` of /bin/true in busybox: podman (runc, conmon) with podman-env.sh."""

from __future__ import annotations

from benchmarks.harness import PODMAN_LABEL, REG, Case


def cases() -> list[Case]:
    return [
        Case(
            name="run --rm --network none busybox true",
            portside=None,  # later: f"{PORTSIDE} run --rm --network none {REG}/busybox:latest true"
            peers={
                "podman": f"podman run --rm --network none --label {PODMAN_LABEL} "
                f"{REG}/busybox:latest /bin/true",
            },
            needs=("podman",),
            runs=15,
            warmup=2,
            note="podman-env.sh's containers.conf: runc, cgroupfs, ulimits this machine allows",
        )
    ]

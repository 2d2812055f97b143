"""Engine `run --rm IMG true`, the image local, beside `podman run --rm` (both --network none).

The goal (issue 6): portside's median at most half of podman's. Two portside rows: with
its own runtime (the default) and with runc (podman's runtime here), so the engine's own
cost shows apart from the runtime's.
"""

from __future__ import annotations

from benchmarks.harness import PODMAN_LABEL, PORTSIDE, REG, Case

IMAGE = f"{REG}/busybox:latest"


def cases() -> list[Case]:
    pull = f"{PORTSIDE} pull -q --tls-verify=false {IMAGE} >/dev/null"
    warm = f"{PORTSIDE} run --rm --network none {IMAGE} true"  # unpacks the layer once
    return [
        Case(
            name="engine: run --rm --network none busybox true",
            portside=f"{PORTSIDE} run --rm --network none {IMAGE} true",
            peers={
                "podman": f"podman run --rm --network none --label {PODMAN_LABEL} {IMAGE} true",
                "portside --runtime runc": f"{PORTSIDE} run --rm --network none --runtime runc "
                f"{IMAGE} true",
            },
            needs=("registry", "peer-images", "podman"),
            setup=f"{pull} && {warm}",
            runs=15,
            warmup=2,
            note="podman: podman-env.sh's containers.conf (runc, cgroupfs); both: image local",
        )
    ]

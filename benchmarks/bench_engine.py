"""Engine `run --rm IMG true`, the image local, beside `podman run --rm` (both --network none).

The goal (issue 6): portside's median at most half of podman's. Two portside rows: with
its own runtime (the default) and with runc (podman's runtime here), so the engine's own
cost shows apart from the runtime's. Both go through the warm CLI (cli/warm.py; the
setup's first call starts it, as a user's first call does); a third row runs the CLI in
its own process (PORTSIDE_WARM=0), as every call did before it.
"""

from __future__ import annotations

from benchmarks.harness import PODMAN_LABEL, PORTSIDE, REG, WORK, Case

IMAGE = f"{REG}/busybox:latest"
WARM_DIR = WORK / "warm-cli"  # the warm CLI these runs use (cli/warm.py), stopped after
STOP_WARM = (
    f'p=$(cat "{WARM_DIR}/cli.pid" 2>/dev/null) && grep -qa "{WARM_DIR}" /proc/$p/cmdline'
    ' && kill "$p"; true'
)


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
                "portside without the warm CLI": f"PORTSIDE_WARM=0 {PORTSIDE} run --rm "
                f"--network none {IMAGE} true",
            },
            needs=("registry", "peer-images", "podman"),
            setup=f"{pull} && {warm}",
            cleanup=STOP_WARM,
            env={"PORTSIDE_WARM_DIR": str(WARM_DIR)},
            runs=15,
            warmup=2,
            note="podman: podman-env.sh's containers.conf (runc, cgroupfs); both: image local",
        )
    ]

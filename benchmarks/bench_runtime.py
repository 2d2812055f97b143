"""OCI runtime `run` of /bin/true in a busybox bundle: portside-runtime beside runc and crun.

As runtimes.sh times it: the spec's default namespaces (pid, net, ipc, uts, mount), and the
same bundle without the network namespace. Python modules are byte-compiled first (this
environment may set PYTHONDONTWRITEBYTECODE): an installed portside always has them.
"""

from __future__ import annotations

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

"""Image build beside `buildah bud --layers`: FROM the peers' debian:bookworm, a RUN, a
COPY of 20 MB (20 files of 1 MB random data), ENV, CMD; the Containerfile of
../shared/bench/build.sh.

- "cold from nothing": empty stores, so the base is pulled and unpacked first (the
  cold case of ../shared/bench/build.sh);
- "cold": the base image is in the store, every step runs (`--no-cache`, which still
  writes the cache, as podman and buildah do);
- "rebuild": nothing changed, every step is a cache hit.

Both tools use their own private roots under $PEERS_DIR/portside-bench/build-case (removed
at the end; buildah: overlay
storage, podman-env.sh's containers.conf for runc and this machine's ulimits; isolation
oci, RUN through runc as portside's RUN goes through portside-runtime; `--network host`,
as portside's RUN: buildah's default would set up a CNI bridge per RUN, leave the
cni-podman0 bridge and its firewall chains in the machine's namespace, and time that too).
The base image is pulled into each root once, in the untimed setup.

Measured 2026-11-29 (BENCH_CASES=build, 10 runs, 5 for the pull case; load average 4-10
from the other helpers, so compare ratios of one run), after a step's overlay upper dir
became its layer as is (no unpack of the blob just written): cold from nothing 4.02 s vs
buildah 13.70 s (0.29), cold 848 ms vs 2.04 s (0.42), rebuild 281 ms vs 838 ms (0.34).
Before that: cold 0.49-0.82.
"""

from __future__ import annotations

from benchmarks.harness import PORTSIDE, REG, WORK, Case

# not named out-*: another run's teardown removes those, even while this case runs
BASE = WORK / "build-case"
CTX = BASE / "ctx"
ROOT = BASE / "root"
RUNROOT = BASE / "run"
BROOT = BASE / "buildah"
IMAGE = f"{REG}/debian:bookworm"

CONTAINERFILE = f"""FROM {IMAGE}
RUN echo hi > /hi
COPY data /data
ENV BENCH=1 LANG=C.UTF-8
CMD ["/bin/cat", "/hi"]
"""

PS = f"{PORTSIDE} --root {ROOT} --runroot {RUNROOT}"
BR = f"buildah --root {BROOT}/storage --runroot {BROOT}/run --storage-driver overlay"
BUD = f"{BR} bud -q --tls-verify=false --isolation oci --network host --layers"

SETUP = f"""set -e
if [ ! -f {CTX}/data/.done ]; then
  rm -rf {CTX}; mkdir -p {CTX}/data
  for i in $(seq -w 1 20); do head -c 1000000 /dev/urandom > {CTX}/data/blob$i.bin; done
  touch {CTX}/data/.done
fi
cat > {CTX}/Containerfile <<'CF'
{CONTAINERFILE}CF
{PS} pull -q {IMAGE} >/dev/null
{BR} pull -q --tls-verify=false {IMAGE} >/dev/null
{PS} build -q -t bench-build:warm {CTX} >/dev/null
{BUD} -t bench-build:warm {CTX} >/dev/null
"""

CLEANUP = f"""{BR} rm -a >/dev/null 2>&1; {BR} rmi -a -f >/dev/null 2>&1
umount {BROOT}/storage/overlay 2>/dev/null
grep -o " {BASE}/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
rm -rf {ROOT} {RUNROOT} {BROOT}
"""


def cases() -> list[Case]:
    common = dict(needs=("peer-images", "podman"), runs=10, warmup=1)
    pull_root = BASE / "pull-root"
    pull_broot = BASE / "pull-buildah"
    br_pull = (
        f"buildah --root {pull_broot}/storage --runroot {pull_broot}/run --storage-driver overlay"
    )
    wipe = (
        f"{br_pull} rmi -a -f >/dev/null 2>&1; umount {pull_broot}/storage/overlay 2>/dev/null; "
        f"rm -rf {pull_root} {pull_broot}"
    )
    return [
        Case(
            name="build cold from nothing: pull debian + every step (empty stores)",
            portside=f"{PORTSIDE} --root {pull_root} --runroot {RUNROOT} build -q "
            f"-t bench-build:pull {CTX}",
            peers={
                "buildah": f"{br_pull} bud -q --tls-verify=false --isolation oci --network host "
                f"--layers -t bench-build:pull {CTX}"
            },
            setup=SETUP,
            prepare=wipe,
            cleanup=wipe,
            note="as ../shared/bench/build.sh's cold: the base pulled and unpacked, no cache",
            needs=("peer-images", "podman"),
            runs=5,
            warmup=1,
        ),
        Case(
            name="build cold: debian + RUN + COPY 20 MB + ENV + CMD (--no-cache)",
            portside=f"{PS} build -q --no-cache -t bench-build:cold {CTX}",
            peers={"buildah": f"{BUD} --no-cache -t bench-build:cold {CTX}"},
            setup=SETUP,
            cleanup=None,
            note="base image present; every step executed",
            **common,  # type: ignore[arg-type]
        ),
        Case(
            name="build rebuild, unchanged (all cache hits)",
            portside=f"{PS} build -q -t bench-build:warm {CTX}",
            peers={"buildah": f"{BUD} -t bench-build:warm {CTX}"},
            setup=SETUP,
            cleanup=CLEANUP,
            note="--layers cache warm, nothing changed",
            **common,  # type: ignore[arg-type]
        ),
    ]

"""Pull (download and verify into an empty store) of debian and layered, beside skopeo copy.

skopeo copies the same image from the same loopback registry into an `oci:` layout,
which is the same work: fetch the manifest, config and layers, verify, write to disk.
Both start from empty every run (prepare removes the output and portside's root).

Measured 2026-11-29 on the shared 2-vCPU VM (load average 7-12 from other work, so
the spread is wide; compare ratios of one run): `hyperfine -N -w 2 -r 20`, portside
vs skopeo, median / min / CPU: debian 0.84 / 0.78 / 0.86, layered 0.69 / 0.69 / 0.66.
Through run.py (all portside runs, then all skopeo runs): debian 1.26, layered 0.74.
(`--no-unpack` there: skopeo does not unpack either.)

"pull and unpack debian" is what `podman pull` does: download, verify and unpack the
layers into its (overlay) layer store; portside unpacks each layer as soon as its blob is
in. podman uses its own empty --root/--runroot (podman-env.sh's containers.conf), so the
shared podman storage the other cases use is not touched; prepare wipes both roots.
"""

from __future__ import annotations

from benchmarks.harness import PORTSIDE, PORTSIDE_ROOT, REG, WORK, Case


def pull_unpack_case() -> Case:
    root = PORTSIDE_ROOT.parent / "out-pull-unpack-root"
    proot = WORK / "out-pull-podman-root"
    prun = WORK / "out-pull-podman-run"
    image = f"{REG}/debian:bookworm"
    # podman's overlay driver bind-mounts its graphroot's overlay dir; a failed pull
    # may leave that mount, which rm cannot remove
    wipe = f"umount {proot}/overlay 2>/dev/null; rm -rf {root} {proot} {prun}"
    return Case(
        name="pull and unpack debian:bookworm into an empty store",
        portside=f"{PORTSIDE} --root {root} pull -q {image}",
        peers={
            "podman": f"podman --root {proot} --runroot {prun} --storage-driver overlay "
            f"pull -q --tls-verify=false {image}",
        },
        prepare=wipe,
        cleanup=wipe,
        needs=("peer-images", "podman"),
        runs=10,
        warmup=1,
        note="both: download, verify, unpack into the overlay layer store",
    )


def cases() -> list[Case]:
    result = []
    for image in ("debian:bookworm", "layered:latest"):
        repo, tag = image.split(":")
        out = WORK / f"out-pull-{repo}"
        root = PORTSIDE_ROOT.parent / f"out-pull-root-{repo}"
        result.append(
            Case(
                name=f"pull {image} to an OCI layout",
                portside=f"{PORTSIDE} --root {root} pull -q --no-unpack {REG}/{image}",
                peers={
                    "skopeo": f"skopeo copy -q --src-tls-verify=false "
                    f"docker://{REG}/{image} oci:{out}:{tag}",
                },
                prepare=f"rm -rf {out} {root}",
                cleanup=f"rm -rf {out} {root}",
                needs=("peer-images",),
                runs=10,
                warmup=1,
                note="portside: manifest, config and layers into its content store, verified",
            )
        )
    result.append(pull_unpack_case())
    return result

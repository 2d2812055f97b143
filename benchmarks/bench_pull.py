"""Pulling from the local registry into an OCI layout (skopeo copy), debian and layered."""

from __future__ import annotations

from benchmarks.harness import REG, WORK, Case


def cases() -> list[Case]:
    result = []
    for image in ("debian:bookworm", "layered:latest"):
        repo, tag = image.split(":")
        out = WORK / f"out-pull-{repo}"
        result.append(
            Case(
                name=f"pull {image} to an OCI layout",
                portside=None,  # later: a portside pull of docker://{REG}/{image}
                peers={
                    "skopeo": f"skopeo copy -q --src-tls-verify=false "
                    f"docker://{REG}/{image} oci:{out}:{tag}",
                },
                prepare=f"rm -rf {out}",
                cleanup=f"rm -rf {out}",
                needs=("peer-images",),
                runs=10,
                warmup=1,
            )
        )
    return result

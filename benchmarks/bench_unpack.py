"""Unpacking debian:bookworm (one 51 MB gzip layer, ~6,700 entries) from an OCI layout."""

from __future__ import annotations

from benchmarks.harness import OCI_DEBIAN, WORK, Case

OUT = WORK / "out-unpack-debian"


def cases() -> list[Case]:
    return [
        Case(
            name="unpack debian:bookworm",
            portside=None,  # later: portside's unpack of {OCI_DEBIAN}:bookworm into {OUT}
            peers={"umoci": f"umoci unpack --image {OCI_DEBIAN}:bookworm {OUT}"},
            prepare=f"rm -rf {OUT}",
            cleanup=f"rm -rf {OUT}",
            needs=("oci-debian",),
            runs=10,
            warmup=1,
            note="bound by file creation on ext4, which drifts: compare within one run",
        )
    ]

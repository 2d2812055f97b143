"""Unpacking debian:bookworm (one 51 MB gzip layer, ~6,700 entries) from an OCI layout.

portside's side is `python -m benchmarks.bench_unpack LAYOUT:TAG DEST [DRIVER]`: read the
layout's manifest and config, unpack every layer into a fresh layer store at DEST (as
`pull` does once the blobs are in), verifying the diffIDs. The CLI verb that will do
this needs the image store; until then this module calls the storage library directly.

Run alone, interleaved with umoci run by run (file creation on this ext4 drifts, so
round-robin is fairer than one tool after the other):

    .venv/bin/python -m benchmarks.bench_unpack --interleaved 10
    .venv/bin/python -m benchmarks.bench_unpack --interleaved 4 --threads 2,4,8
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import OCI_DEBIAN, REPO, WORK, Case

OUT = WORK / "out-unpack-debian"
# the interleaved mode's own dir (not out-*: the harness sweeps those when it ends)
OUT_IL = WORK / "il-unpack-debian"
PY = str(REPO / ".venv" / "bin" / "python")


def cases() -> list[Case]:
    return [
        Case(
            name="unpack debian:bookworm",
            portside=f"cd {REPO} && {PY} -m benchmarks.bench_unpack {OCI_DEBIAN}:bookworm {OUT}",
            peers={"umoci": f"umoci unpack --image {OCI_DEBIAN}:bookworm {OUT}"},
            prepare=f"rm -rf {OUT}",
            cleanup=f"rm -rf {OUT}",
            needs=("oci-debian",),
            runs=10,
            warmup=1,
            note="bound by file creation on ext4, which drifts: compare within one run",
        )
    ]


def _blob(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexdigest


def unpack(image: str, dest: Path, driver: str = "overlay") -> None:
    from portside.storage.layers import LayerStore

    layout_s, _, tag = image.rpartition(":")
    layout = Path(layout_s)
    index = json.loads((layout / "index.json").read_text())
    desc = next(
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    )
    manifest = json.loads(_blob(layout, desc["digest"]).read_bytes())
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_bytes())
    layers = [
        (diff_id, _blob(layout, d["digest"]))
        for diff_id, d in zip(config["rootfs"]["diff_ids"], manifest["layers"], strict=True)
    ]
    store = LayerStore(dest, driver)
    store.unpack_chain(layers)


def interleaved(rounds: int, threads: list[int] | None = None) -> None:
    """Round-robin portside / umoci with the destination wiped (untimed) before
    each; with `threads`, one portside variant per unpack thread count."""
    image = f"{OCI_DEBIAN}:bookworm"
    portside = [PY, "-m", "benchmarks.bench_unpack", image, str(OUT_IL)]
    cmds: dict[str, list[str]] = {}
    if threads:
        for t in threads:
            cmds[f"portside-t{t}"] = ["env", f"PORTSIDE_UNPACK_THREADS={t}", *portside]
    else:
        cmds["portside"] = portside
    cmds["umoci"] = ["umoci", "unpack", "--image", image, str(OUT_IL)]
    first = next(iter(cmds))
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for r in range(rounds):
        for label, cmd in cmds.items():
            subprocess.run(["rm", "-rf", str(OUT_IL)], check=True)
            subprocess.run(["sync"], check=True)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
            times[label].append(time.perf_counter() - t0)
        print(
            f"round {r + 1}: "
            + " ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items())
            + f" ratio {times['umoci'][-1] / times[first][-1]:.2f}x",
            flush=True,
        )
    subprocess.run(["rm", "-rf", str(OUT_IL)], check=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("| tool | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for k, v in times.items():
        print(f"| {k} | {med[k]:.2f} | {min(v):.2f} | {max(v):.2f} |")
    for label in cmds:
        if label == "umoci":
            continue
        ratios = [u / p for p, u in zip(times[label], times["umoci"], strict=True)]
        print(
            f"umoci / {label}: ratio of medians {med['umoci'] / med[label]:.2f}x, "
            f"median of per-round ratios {statistics.median(ratios):.2f}x"
        )


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--interleaved":
        threads = None
        if "--threads" in argv:
            threads = [int(t) for t in argv[argv.index("--threads") + 1].split(",")]
        interleaved(int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 10, threads)
        return 0
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    unpack(argv[0], Path(argv[1]), argv[2] if len(argv) == 3 else "overlay")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PORTSIDE_STORAGE_DRIVER", "overlay")
    sys.exit(main(sys.argv[1:]))

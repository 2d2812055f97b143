"""Whole builds against `buildah bud`: the same multi-stage Containerfiles (RUN, COPY,
ADD, --mount, every metadata instruction), FROM the same busybox image, must
give equal config fields and equal file trees, compared entry by entry (type, mode,
owner, size, content hash, link target; not mtimes).

buildah runs with a private overlay root and runroot under tmp_path, with runc (crun 1.8
refuses this machine's hybrid cgroups), as the other buildah interop tests do. Debian's
buildah 1.28 has no heredocs; tests/integration/test_build_builder.py covers those.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_tool
from tests.integration.test_engine_support import IMAGE, PORTSIDE, engine_template
from tests.interop.test_build_buildah_metadata import FIELDS, _unmount_under

__all__ = ["engine_template"]

pytestmark = [pytest.mark.interop, pytest.mark.root, pytest.mark.overlay]

EVERYTHING = r"""# syntax=docker/dockerfile:1
ARG BASE=localhost/busybox
FROM ${BASE} AS builder
ARG GREETING=hello
ENV APP_HOME=/opt/app PATH=/opt/app/bin:$PATH
WORKDIR $APP_HOME
COPY --chmod=755 tool.sh bin/tool
RUN mkdir -p out && echo "$GREETING from builder" > out/greeting && tool > out/tool.txt
RUN echo "in $APP_HOME" > /opt/app/out/env \
 && mkdir -p /opt/app/out/deep/er && echo deep > /opt/app/out/deep/er/file

FROM localhost/busybox AS final
LABEL org.example.name="portside test" version=1
ARG GREETING
ENV GREETING=${GREETING:-unset} EMPTY=
COPY --from=builder /opt/app/out/ /srv/out/
COPY --chown=nobody:nobody data/ /srv/data/
COPY --chmod=750 data/ /srv/chmodded/
ADD --chown=65534:65534 data /srv/added/
COPY a.txt b.txt /srv/two/
COPY ["spaced name.txt", "/srv/spaced name.txt"]
COPY link-to-a /srv/followed
ADD archive.tar /srv/unpacked/
ADD archive.tar.gz /srv/unpacked-gz
ADD plain.txt /srv/
RUN --mount=type=bind,source=data,target=/mnt/ctx cat /mnt/ctx/keep.txt > /srv/from-bind
RUN ln -s /srv/out/greeting /srv/link && rm /srv/data/remove-me && chmod 700 /srv/data/sub \
 && mkdir -p /var/empty-dir && echo "$GREETING" > /srv/greeting-env
WORKDIR /srv/work
RUN touch made-in-workdir
USER 65534:65534
EXPOSE 8080/tcp 53/udp 9000-9002
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD ["true"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/out/greeting"]
ONBUILD ENV CHILD=1
SHELL ["/bin/sh", "-ec"]
"""

SCRATCH = """FROM localhost/busybox AS tools
RUN mkdir -p /out/bin /out/etc && cp /bin/busybox /out/bin/ && ln -s busybox /out/bin/sh \
 && echo owned > /out/etc/owned && chown 65534:65534 /out/etc/owned && chmod 600 /out/etc/owned
FROM scratch
COPY --from=tools /out/ /
COPY --from=tools --chown=1:2 /out/etc/owned /chowned
COPY a.txt /a.txt
ENV X=1
CMD ["/bin/sh", "-c", "cat /a.txt"]
"""

LAYERS_FALSE = """FROM localhost/busybox
COPY data/ /data/
RUN rm /data/remove-me && echo made > /made
WORKDIR /data
CMD ["ls"]
"""

# name -> (Containerfile, build args, target, extra flags for both tools)
CASES: dict[str, tuple[str, dict[str, str], str | None, list[str]]] = {
    "everything": (EVERYTHING, {"GREETING": "hi there"}, None, ["--layers"]),
    "target-builder": (EVERYTHING, {}, "builder", ["--layers"]),
    "scratch-and-copy-from-stage": (SCRATCH, {}, None, ["--layers"]),
    "layers-false": (LAYERS_FALSE, {}, None, ["--layers=false"]),
}


def _make_context(ctx: Path, text: str) -> None:
    (ctx / "data" / "sub").mkdir(parents=True)
    (ctx / "data" / "keep.txt").write_text("kept\n")
    (ctx / "data" / "remove-me").write_text("gone\n")
    (ctx / "data" / "sub" / "inner.txt").write_text("inner\n")
    os.chmod(ctx / "data" / "sub" / "inner.txt", 0o640)
    (ctx / "a.txt").write_text("a\n")
    (ctx / "b.txt").write_text("b\n")
    (ctx / "spaced name.txt").write_text("spaced\n")
    os.symlink("a.txt", ctx / "link-to-a")
    (ctx / "plain.txt").write_text("plain, not an archive\n")
    (ctx / "tool.sh").write_text("#!/bin/sh\necho tool ran\n")
    for name, mode in (("archive.tar", "w"), ("archive.tar.gz", "w:gz")):
        with tarfile.open(ctx / name, mode) as tf:  # type: ignore[call-overload]
            for path, data in (("top.txt", b"top\n"), ("d/nested.txt", b"nested\n")):
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 1_700_000_000
                tf.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo("d/exec")
            info.size = 3
            info.mode = 0o750
            info.uid = 1000
            info.gid = 1000
            tf.addfile(info, io.BytesIO(b"x\n\n"))
    (ctx / "Containerfile").write_text(text)


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under root: (type, mode, uid, gid, size, sha256, link target)."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = "/" + os.path.relpath(full, root)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", None, st.st_uid, st.st_gid, None, None, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", mode, st.st_uid, st.st_gid, None, None, None)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256(Path(full).read_bytes()).hexdigest()
                out[rel] = ("f", mode, st.st_uid, st.st_gid, st.st_size, h, None)
            else:
                out[rel] = ("o", mode, st.st_uid, st.st_gid, None, None, None)
    return out


@pytest.fixture
def buildah(tmp_path: Path, fixture_layouts: dict[str, Path]) -> Iterator[list[str]]:
    need_tool("buildah")
    need_tool("runc")
    base = [
        "buildah",
        "--root",
        str(tmp_path / "bstorage"),
        "--runroot",
        str(tmp_path / "brun"),
        "--storage-driver",
        "overlay",  # vfs copies the whole root for every step: 4x slower here
    ]
    try:
        res = subprocess.run(
            [*base, "pull", "-q", f"oci:{fixture_layouts['busybox']}:latest"],
            capture_output=True,
            text=True,
            check=True,
        )
        subprocess.run([*base, "tag", res.stdout.strip(), IMAGE], check=True)
        yield base
    finally:
        subprocess.run([*base, "rm", "-a"], capture_output=True, check=False)
        subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True, check=False)
        _unmount_under(tmp_path / "bstorage")
        subprocess.run(["rm", "-rf", str(tmp_path / "bstorage"), str(tmp_path / "brun")])


@pytest.fixture
def seeded(state_roots: tuple[Path, Path], engine_template: Path) -> Iterator[Path]:
    """This test's root, holding localhost/busybox:latest unpacked."""
    root = state_roots[0]
    subprocess.run(["rm", "-rf", str(root)], check=True)
    subprocess.run(["cp", "-a", str(engine_template), str(root)], check=True)
    try:
        yield root
    finally:
        _unmount_under(root)


def _portside(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [PORTSIDE, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if check:
        assert res.returncode == 0, res.stderr + res.stdout
    return res


def _flags(args: dict[str, str], target: str | None, extra: list[str]) -> list[str]:
    out = ["--format", "docker", *extra]
    for k, v in args.items():
        out += ["--build-arg", f"{k}={v}"]
    if target:
        out += ["--target", target]
    return out


@pytest.mark.timeout(240)
@pytest.mark.parametrize("case", sorted(CASES))
def test_build_equals_buildah(buildah: list[str], seeded: Path, tmp_path: Path, case: str) -> None:
    text, args, target, extra = CASES[case]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _make_context(ctx, text)
    tag = "localhost/built:test"
    res = subprocess.run(
        # host network, as portside's RUN: buildah's default would make its CNI bridge
        # (cni-podman0, firewall chains) in the machine's own namespace
        [*buildah, "bud", "--runtime", "runc", "--network", "host",
         *_flags(args, target, extra), "-t", tag, str(ctx)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr + res.stdout
    theirs_cfg = json.loads(
        subprocess.run(
            [*buildah, "inspect", "--type", "image", tag], capture_output=True, check=True
        ).stdout
    )["Docker"]["config"]
    (theirs_cfg.get("Labels") or {}).pop("io.buildah.version", None)
    _portside("build", *_flags(args, target, extra), "-t", tag, str(ctx))
    ours_doc = json.loads(_portside("image", "inspect", tag).stdout)[0]
    ours_cfg = ours_doc.get("Config") or {}
    for field in FIELDS:
        ours_v, theirs_v = ours_cfg.get(field) or None, theirs_cfg.get(field) or None
        if field == "Env" and ours_v and theirs_v:
            # an ENV that sets a variable the image has replaces it in place (docker's
            # rule, which portside follows); buildah moves it to the end: same variables
            ours_v, theirs_v = sorted(ours_v), sorted(theirs_v)
        assert ours_v == theirs_v, field

    res = subprocess.run(
        [*buildah, "from", "--pull=never", tag], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    cid = res.stdout.strip()
    mnt = subprocess.run(
        [*buildah, "mount", cid], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        theirs = tree(Path(mnt))
    finally:
        subprocess.run([*buildah, "umount", cid], capture_output=True, check=False)
    ours_mnt = _portside("image", "mount", tag).stdout.strip()
    try:
        ours = tree(Path(ours_mnt))
    finally:
        _portside("image", "unmount", tag, check=False)
    only_theirs = sorted(set(theirs) - set(ours))
    only_ours = sorted(set(ours) - set(theirs))
    assert not only_theirs and not only_ours, f"buildah only: {only_theirs}; ours: {only_ours}"
    differ = {p: (ours[p], theirs[p]) for p in sorted(ours) if ours[p] != theirs[p]}
    assert not differ, differ
    # the same layers: one per file step with --layers, one per stage without
    ours_h = [bool(h.get("empty_layer")) for h in ours_doc["History"]]
    theirs_doc = json.loads(
        subprocess.run(
            [*buildah, "inspect", "--type", "image", tag], capture_output=True, check=True
        ).stdout
    )["Docker"]
    theirs_h = [bool(h.get("empty_layer")) for h in theirs_doc["history"]]
    assert ours_h == theirs_h
    # created_by as buildah writes it, but for COPY/ADD, whose source digests are each
    # tool's own hash of what was copied
    ours_by = [h.get("created_by", "") for h in ours_doc["History"]]
    theirs_by = [h.get("created_by", "") for h in theirs_doc["history"]]
    for mine, their in zip(ours_by, theirs_by, strict=True):
        if " COPY " in their or " ADD " in their:
            assert mine.split(":")[0] == their.split(":")[0]
            assert mine.rsplit(" in ", 1)[1] == their.rsplit(" in ", 1)[1]
        else:
            assert mine == their
    assert len(ours_doc["RootFS"]["Layers"]) == len(theirs_doc["rootfs"]["diff_ids"])

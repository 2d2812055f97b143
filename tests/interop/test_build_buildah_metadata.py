"""The parser, expander and metadata evaluator against `buildah bud`.

Each Containerfile builds FROM scratch with only COPY of local files and metadata
instructions, so buildah runs nothing; the config fields it writes must equal the
ones portside's evaluator computes for the same file, build args and target.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.build.dockerfile.instructions import Copy
from portside.build.evaluate import (
    NOP,
    StageEvaluator,
    created_by,
    evaluate_metadata,
    scratch_config,
)
from portside.build.stages import plan_build
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.interop, pytest.mark.root]

FIELDS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
)

# Where buildah 1.28 departs from the documented Dockerfile semantics, portside follows
# the documentation (and unit tests pin it): buildah ignores SHELL for shell-form CMD and
# ENTRYPOINT, ignores the escape token inside words under `# escape=``, and lacks
# ${VAR-w} / ${VAR+w}.
KNOWN_DIFFERENCES: dict[str, set[str]] = {"shell-then-shell-form": {"Cmd", "Entrypoint"}}

CASES: dict[str, tuple[str, dict[str, str], str | None]] = {
    "every-metadata-instruction": (
        r"""# syntax=docker/dockerfile:1
ARG TAG=1
FROM scratch
ARG TAG
ARG V=2
ENV A=x B="hello world" C=${V:-no} D=$TAG
ENV legacy value with spaces
LABEL "com.example"="v $V" other=2 \
      # a comment inside a continuation

      third='single $V'
EXPOSE 80 53/udp 8000-8002 443
USER app:app
WORKDIR /srv
WORKDIR sub
CMD echo hi
ENTRYPOINT ["/bin/tini", "--"]
VOLUME /data /x
VOLUME ["/json/vol"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=3 CMD curl -f http://x/
SHELL ["/bin/bash", "-c"]
ONBUILD WORKDIR /z
MAINTAINER someone <a@example.com>
COPY a.txt /a
COPY dir/ /d/
""",
        {},
        None,
    ),
    "args-scoping-and-modifiers": (
        r"""ARG GLOBAL=g
ARG BOTH=global
FROM scratch
ARG BOTH
ARG OVER=default
ARG EMPTY=
ARG UNSET
ENV G="[$GLOBAL]" B=$BOTH O=$OVER
ENV M1=${EMPTY:-dash} M4=${OVER:+plus} M7=${UNSET:-unset}
ENV M6=${UNSET:+no}x ESC=\$OVER Q='$OVER' DQ="a\"b $OVER"
ENV OVER=from-env
ENV AFTER=$OVER
USER ${OVER}
WORKDIR /w/$OVER
LABEL l1=$BOTH l2="${GLOBAL:-none}"
STOPSIGNAL 9
""",
        {"OVER": "from-cli"},
        None,
    ),
    "backtick-escape": (
        "# escape=`\n"
        "FROM scratch\n"
        "ENV P=C:/path/to `\n"
        "    Q=two\n"
        "LABEL a=plain b=x\n"
        'CMD ["c:\\\\x.exe", "arg"]\n'
        "WORKDIR /a/b\n",
        {},
        None,
    ),
    "multistage-target-and-inheritance": (
        r"""FROM scratch AS base
ENV BASE=1
CMD ["base-cmd"]
LABEL stage=base
ONBUILD LABEL triggered=yes
ONBUILD ENV FROM_TRIGGER=${BASE}-t

FROM base AS child
ENTRYPOINT ["/entry"]
ENV CHILD=1
HEALTHCHECK NONE

FROM scratch AS unrelated
COPY --from=child /x /x

FROM child AS final
CMD ["final"]
HEALTHCHECK --retries=2 CMD ["/bin/check", "--fast"]
EXPOSE 9000
""",
        {},
        "child",
    ),
    "expansion-corners": (
        r"""ARG BASE=scratch
ARG PORTS="7000 7001/udp"
FROM ${BASE} AS first
ARG PORTS
ARG UID=1000
ENV V=env
ENV V=new X=$V
ENV LIST="a b" Q="quoted \"inner\" $UID" NEST=${UNSETX:-${UID}}
EXPOSE $PORTS
VOLUME $LIST /v3
USER $UID:${UID}
WORKDIR rel
WORKDIR ../abs/./x
LABEL multi="one \
two" e=
ENTRYPOINT ["/bin/sh", "-c", "echo $V"]
CMD ["$NOT_EXPANDED"]
STOPSIGNAL ${SIG:-SIGQUIT}

FROM first
LABEL child=1
""",
        {"UID": "42"},
        None,
    ),
    "shell-then-shell-form": (
        r"""FROM scratch
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
CMD ls -l | wc -l
ENTRYPOINT exec /bin/app
""",
        {},
        None,
    ),
}


@contextlib.contextmanager
def buildah_vfs_root(tmp: Path) -> Iterator[list[str]]:
    """The buildah command line with a private vfs root and run root under `tmp` (a
    private root needs root here); its containers, images, mounts and dirs go after."""
    need_tool("buildah")
    need_root()
    base = [
        "buildah",
        "--root",
        str(tmp / "storage"),
        "--runroot",
        str(tmp / "run"),
        "--storage-driver",
        "vfs",
    ]
    try:
        yield base
    finally:
        subprocess.run([*base, "rm", "-a"], capture_output=True, check=False)
        subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True, check=False)
        _unmount_under(tmp)
        subprocess.run(["rm", "-rf", str(tmp / "storage"), str(tmp / "run")], check=False)


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with buildah_vfs_root(tmp_path_factory.mktemp("buildah")) as base:
        yield base


def _unmount_under(path: Path) -> None:
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for mp in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], check=False)


def _context(tmp: Path, text: str) -> Path:
    ctx = tmp / "ctx"
    (ctx / "dir").mkdir(parents=True)
    (ctx / "a.txt").write_text("a\n")
    (ctx / "dir" / "f").write_text("f\n")
    (ctx / "x").write_text("x\n")
    (ctx / "Containerfile").write_text(text)
    return ctx


def _buildah_config(base: list[str], ctx: Path, args: dict[str, str], target: str | None) -> Any:
    cmd = [*base, "bud", "-q", "--format", "docker", "--layers=false"]
    for k, v in args.items():
        cmd += ["--build-arg", f"{k}={v}"]
    if target:
        cmd += ["--target", target]
    tag = f"localhost/portside-test:{ctx.parent.name.lower()}"
    cmd += ["-t", tag, "-f", str(ctx / "Containerfile"), str(ctx)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    out = subprocess.run(
        [*base, "inspect", "--type", "image", tag], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)["Docker"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(CASES))
def test_config_equals_buildah(buildah: list[str], tmp_path: Path, case: str) -> None:
    text, args, target = CASES[case]
    ctx = _context(tmp_path, text)
    theirs = _buildah_config(buildah, ctx, args, target)
    plan = plan_build(text, filename="Containerfile", build_args=args, target=target)
    result = evaluate_metadata(plan)[plan.target]
    ours = result.config
    their_cfg = theirs["config"]
    labels = dict(their_cfg.get("Labels") or {})
    labels.pop("io.buildah.version", None)
    their_cfg["Labels"] = labels or None
    for field in FIELDS:
        if field in KNOWN_DIFFERENCES.get(case, set()):
            assert ours.get(field)[:1] == ["/bin/ash"], "SHELL applies to shell forms"
            assert their_cfg.get(field)[:2] == ["/bin/sh", "-c"], "buildah changed: update"
            continue
        mine = ours.get(field) or None
        assert mine == (their_cfg.get(field) or None), f"{case}: {field}"
    assert (result.author or "") == (theirs.get("author") or ""), case
    if len(plan.stages) == 1:
        _compare_history(plan, theirs.get("history") or [])


def _compare_history(plan: Any, history: list[dict[str, Any]]) -> None:
    """created_by equals buildah's for metadata steps; COPY names kind:hash and dest."""
    ev = StageEvaluator(plan, plan.stages[0], scratch_config())
    ours: list[str | re.Pattern[str]] = []
    for ins in plan.stages[0].instructions:
        ev.apply(ins)
        if isinstance(ins, Copy):
            ours.append(re.compile(rf"^{re.escape(NOP)}COPY (file|dir|multi):[0-9a-f]{{64}} in "))
        else:
            ours.append(created_by(ins, stage_args=ev.args))
    theirs = [h["created_by"] for h in history]
    assert len(theirs) == len(ours)
    for mine, their in zip(ours, theirs, strict=True):
        if isinstance(mine, str):
            assert mine == their
        else:
            assert mine.match(their), their

"""Build plans (stage order, --target pruning, references) and the metadata evaluator."""

from __future__ import annotations

from typing import Any

import pytest

from portside.build.dockerfile.instructions import Copy, Run
from portside.build.evaluate import (
    DEFAULT_PATH,
    StageEvaluator,
    copy_source_ref,
    created_by,
    evaluate_metadata,
)
from portside.build.stages import plan_build, platform_args
from portside.errors import BuildError, DockerfileSyntaxError
from portside.oci.platform import parse_platform

MULTI = """\
ARG BASE=scratch
FROM $BASE AS deps
COPY a /a
FROM scratch AS build
COPY --from=deps /a /a
FROM build AS test
COPY b /b
FROM scratch AS unrelated
FROM scratch AS final
COPY --from=1 /a /a
"""


def names(plan: Any) -> list[str]:
    return [s.name or str(s.index) for s in plan.needed]


def test_default_target_is_last_stage_with_its_dependencies() -> None:
    plan = plan_build(MULTI)
    assert names(plan) == ["deps", "build", "final"]
    assert plan.target == 4


def test_target_selects_only_needed_stages() -> None:
    assert names(plan_build(MULTI, target="test")) == ["deps", "build", "test"]
    assert names(plan_build(MULTI, target="DEPS")) == ["deps"]
    assert names(plan_build(MULTI, target="unrelated")) == ["unrelated"]


def test_unknown_target() -> None:
    with pytest.raises(BuildError, match=r"target stage 'nope' not found \(named stages: deps"):
        plan_build(MULTI, target="nope")


def test_from_uses_global_args_and_build_args() -> None:
    plan = plan_build(MULTI, build_args={"BASE": "alpine:3"})
    assert plan.stages[0].base == "alpine:3"
    assert plan.global_args == {"BASE": "alpine:3"}


def test_from_image_named_like_its_own_stage_is_an_image() -> None:
    plan = plan_build("FROM alpine AS alpine\nFROM alpine\n")
    assert plan.stages[0].base_stage is None
    assert plan.stages[1].base_stage == 0
    assert names(plan) == ["alpine", "1"]


def test_copy_from_later_stage_and_cycles() -> None:
    ok = plan_build("FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n", target="a")
    assert names(ok) == ["a", "b"]
    cyc = "FROM scratch AS a\nCOPY --from=b /x /x\nFROM a AS b\n"
    with pytest.raises(BuildError, match="circular dependency between stages: b -> a -> b"):
        plan_build(cyc, target="b")


def test_copy_from_refs_checked() -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"^Dockerfile:2: COPY: --from=5: there is no"):
        plan_build("FROM scratch\nCOPY --from=5 /a /a\n")
    with pytest.raises(DockerfileSyntaxError, match="cannot copy from itself"):
        plan_build("FROM scratch AS me\nCOPY --from=me /a /a\n")
    # an image reference is not a stage
    assert names(plan_build("FROM scratch\nCOPY --from=busybox:1 /a /a\n")) == ["0"]


def test_copy_from_expanded_with_stage_args_and_run_mount_from() -> None:
    text = (
        "FROM scratch AS one\nFROM scratch AS two\nFROM scratch\nARG SRC=one\n"
        "COPY --from=$SRC /a /a\nRUN --mount=type=bind,from=two,target=/t true\n"
    )
    assert names(plan_build(text)) == ["one", "two", "2"]
    assert names(plan_build(text, build_args={"SRC": "two"})) == ["two", "2"]


def test_instructions_before_from_and_no_from() -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"^Dockerfile:1: ENV: only ARG may come"):
        plan_build("ENV a=b\nFROM scratch\n")
    with pytest.raises(DockerfileSyntaxError, match="no FROM"):
        plan_build("ARG a=b\n")
    with pytest.raises(DockerfileSyntaxError, match="duplicate stage name"):
        plan_build("FROM scratch AS a\nFROM scratch AS a\n")
    with pytest.raises(DockerfileSyntaxError, match=r"^Dockerfile:1: FROM: base name"):
        plan_build("FROM $NOTHING\n")


def test_platform_args() -> None:
    args = platform_args(parse_platform("linux/amd64"), parse_platform("linux/arm/v7"))
    assert args["BUILDPLATFORM"] == "linux/amd64"
    assert (args["TARGETOS"], args["TARGETARCH"], args["TARGETVARIANT"]) == ("linux", "arm", "v7")
    plan = plan_build(
        "FROM --platform=$BUILDPLATFORM img-$TARGETARCH\n",
        build_platform=parse_platform("linux/amd64"),
        target_platform="linux/arm64",
    )
    assert plan.stages[0].base == "img-arm64"
    assert plan.stages[0].platform == "linux/amd64"


def cfg(text: str, **kw: Any) -> dict[str, Any]:
    plan = plan_build(text, **kw)
    return evaluate_metadata(plan)[plan.target].config


def test_global_arg_visible_in_stage_only_when_redeclared() -> None:
    text = "ARG G=glob\nFROM scratch\nENV a=[$G]\nARG G\nENV b=[$G]\n"
    assert cfg(text)["Env"] == [DEFAULT_PATH, "a=[]", "b=[glob]"]
    assert cfg(text, build_args={"G": "cli"})["Env"][-1] == "b=[cli]"


def test_platform_args_visible_in_stage_only_when_declared() -> None:
    text = "FROM scratch\nENV a=[$TARGETARCH]\nARG TARGETARCH\nENV b=[$TARGETARCH]\n"
    env = cfg(text, target_platform="linux/arm64")["Env"]
    assert env[1:] == ["a=[]", "b=[arm64]"]


def test_env_overrides_arg_and_env_expansion_uses_previous_values() -> None:
    text = "FROM scratch\nARG V=arg\nENV V=env\nENV W=$V\nENV V=new X=$V\n"
    assert cfg(text, build_args={"V": "cli"})["Env"][1:] == ["V=new", "W=env", "X=env"]


def test_build_arg_overrides_default_and_undeclared_build_arg_is_ignored() -> None:
    text = "FROM scratch\nARG A=def\nENV A1=$A B1=$B\n"
    assert cfg(text, build_args={"A": "x", "B": "y"})["Env"][1:] == ["A1=x", "B1="]


def test_metadata_instructions_applied() -> None:
    text = r"""FROM scratch
ARG P=8080
ENV HOME=/home/me
LABEL a=1 "b c"="d e"
EXPOSE $P 53/udp 7000-7002/tcp
USER ${USER:-app}
WORKDIR $HOME
WORKDIR sub/../other
VOLUME /v1 /v2
VOLUME ["/v3"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
SHELL ["/bin/bash", "-c"]
CMD run me
ONBUILD COPY . /app
MAINTAINER me
"""
    plan = plan_build(text)
    ev = evaluate_metadata(plan)[0]
    c = ev.config
    assert c["Labels"] == {"a": "1", "b c": "d e"}
    assert c["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}, "7000-7002/tcp": {}}
    assert c["User"] == "app"
    assert c["WorkingDir"] == "/home/me/other"
    assert c["Volumes"] == {"/v1": {}, "/v2": {}, "/v3": {}}
    assert c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5 * 10**9}
    assert c["Cmd"] == ["/bin/bash", "-c", "run me"]
    assert c["OnBuild"] == ["COPY . /app"]
    assert ev.author == "me"


def test_entrypoint_resets_inherited_cmd_but_not_own() -> None:
    text = 'FROM scratch AS a\nCMD ["c"]\nFROM a\nENTRYPOINT ["e"]\n'
    assert cfg(text)["Cmd"] is None
    text2 = 'FROM scratch\nCMD ["c"]\nENTRYPOINT ["e"]\n'
    assert cfg(text2)["Cmd"] == ["c"]


def test_onbuild_triggers_run_in_child_and_are_not_inherited() -> None:
    text = "FROM scratch AS a\nONBUILD ENV T=1\nONBUILD LABEL l=x\nFROM a\nENV U=2\n"
    c = cfg(text)
    assert c["Env"][1:] == ["T=1", "U=2"]
    assert c["Labels"] == {"l": "x"}
    assert "OnBuild" not in c


def test_evaluator_errors_name_line() -> None:
    for text, msg in [
        ("FROM scratch\nSTOPSIGNAL SIGNOPE\n", "STOPSIGNAL: invalid signal 'SIGNOPE'"),
        ("FROM scratch\nEXPOSE 80/xtp\n", "EXPOSE: invalid protocol"),
        ("FROM scratch\nEXPOSE http\n", "EXPOSE: invalid port 'http'"),
        ("FROM scratch\nEXPOSE 9-1\n", "EXPOSE: invalid port range"),
        ("FROM scratch\nUSER ${X:?set X}\n", "USER: X: set X"),
        ("FROM scratch\nVOLUME $NONE\n", "VOLUME: VOLUME specified can not be an empty"),
        ("FROM scratch\nRUN true\n", "RUN: RUN needs the builder"),
    ]:
        with pytest.raises(DockerfileSyntaxError, match=r"^Dockerfile:2: " + msg):
            cfg(text)


def test_signals_accepted() -> None:
    for sig in ("9", "SIGKILL", "term", "SIGRTMIN+3"):
        assert cfg(f"FROM scratch\nSTOPSIGNAL {sig}\n")["StopSignal"] == sig


def test_copy_and_run_as_the_builder_sees_them() -> None:
    text = (
        "FROM scratch\nARG U=10 SRC=dir\nENV D=/dst\n"
        "COPY --chown=$U:$U --chmod=0640 --exclude=$SRC/*.md $SRC/* <<EOF <<'RAW' $D/\n"
        "v=$U\nEOF\nr=$U\nRAW\nRUN echo $U\n"
    )
    plan = plan_build(text, build_args={"http_proxy": "http://p:3128", "IGNORED": "x"})
    ev = StageEvaluator(plan, plan.stages[0], {"Env": ["PATH=/bin"]})
    out = [ev.apply(i) for i in plan.stages[0].instructions]
    copy = out[2]
    assert isinstance(copy, Copy)
    assert copy.sources == ("dir/*", "<<EOF", "<<RAW")
    assert (copy.dest, copy.chown, copy.chmod) == ("/dst/", "10:10", "0640")
    assert copy.excludes == ("dir/*.md",)
    assert [h.content for h in copy.heredocs] == ["v=10\n", "r=$U\n"]
    run = out[3]
    assert isinstance(run, Run) and run.command.args == ("echo $U",)
    assert ev.run_environment() == [
        "PATH=/bin",
        "D=/dst",
        "U=10",
        "SRC=dir",
        "http_proxy=http://p:3128",
    ]


def test_unused_build_args() -> None:
    text = "ARG G\nFROM scratch AS a\nARG A\nFROM scratch\nARG B\n"
    args = {"G": "1", "A": "2", "B": "3", "C": "4", "HTTP_PROXY": "p"}
    assert plan_build(text, build_args=args).unused_build_args() == ["A", "C"]
    assert plan_build(text, build_args=args, target="a").unused_build_args() == ["B", "C"]


def test_run_mount_options_are_expanded() -> None:
    text = "FROM scratch\nARG C=/root/.cache\nRUN --mount=type=cache,target=$C/pip,id=${C} true\n"
    plan = plan_build(text)
    ev = StageEvaluator(plan, plan.stages[0], {})
    out = [ev.apply(i) for i in plan.stages[0].instructions]
    run = out[1]
    assert isinstance(run, Run)
    assert run.mounts[0].get("target") == "/root/.cache/pip"
    assert run.mounts[0].get("id") == "/root/.cache"


def test_run_mount_values_checked_after_expansion() -> None:
    text = "FROM scratch\nARG U=root\nRUN --mount=type=cache,target=/c,uid=$U true\n"
    with pytest.raises(DockerfileSyntaxError, match=r"^Dockerfile:3: RUN: --mount: uid must be"):
        _apply_all(text)


def _apply_all(text: str) -> None:
    plan = plan_build(text)
    ev = StageEvaluator(plan, plan.stages[0], {})
    for ins in plan.stages[0].instructions:
        ev.apply(ins)


def test_created_by_forms() -> None:
    text = 'FROM scratch\nRUN echo  hi\nRUN ["/bin/true", "x"]\nCOPY a /b/\nARG Z=1 A\nlabel  k=v\n'
    plan = plan_build(text)
    ins = plan.stages[0].instructions
    assert created_by(ins[0]) == "/bin/sh -c echo  hi"
    assert created_by(ins[0], shell=["/bin/bash", "-c"]) == "/bin/bash -c echo  hi"
    assert created_by(ins[1]) == "/bin/true x"
    ref = copy_source_ref(["dir"], "sha256:" + "ab" * 32)
    assert ref == "dir:" + "ab" * 32
    assert copy_source_ref(["file", "file"], "sha256:00").startswith("multi:")
    assert copy_source_ref(["symlink"], "sha256:00") == "file:00"
    assert created_by(ins[2], source_ref=ref) == f"/bin/sh -c #(nop) COPY {ref} in /b/ "
    assert created_by(ins[3], stage_args={"Z": "1", "B": "2"}) == "/bin/sh -c #(nop) ARG B Z"
    assert created_by(ins[4]) == "/bin/sh -c #(nop) label  k=v"

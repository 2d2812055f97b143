"""The build plan: stages in file order, named, and pruned to what `--target` needs.

A stage depends on another through `FROM <stage>`, `COPY --from=<stage|index>`
and `RUN --mount=from=<stage>`; only the target and its dependencies are built
(as buildkit does), in file order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from portside.build.dockerfile.expand import expand_word
from portside.build.dockerfile.instructions import (
    Arg,
    Copy,
    Env,
    From,
    Instruction,
    Run,
    parse_all,
)
from portside.build.dockerfile.parser import Dockerfile, parse
from portside.errors import BuildError, DockerfileSyntaxError
from portside.oci.platform import Platform, host_platform, parse_platform

PROXY_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)


def platform_args(build: Platform | None = None, target: Platform | None = None) -> dict[str, str]:
    """The automatic platform ARGs (global scope; a stage sees them only if it declares them)."""
    b = build or host_platform()
    t = target or b
    out: dict[str, str] = {}
    for prefix, p in (("BUILD", b), ("TARGET", t)):
        out[prefix + "PLATFORM"] = str(p)
        out[prefix + "OS"] = p.os
        out[prefix + "ARCH"] = p.architecture
        out[prefix + "VARIANT"] = p.variant or ""
    return out


@dataclass
class Stage:
    """One FROM and the instructions after it, with the stages it needs."""

    index: int
    name: str | None
    base: str
    """The expanded FROM argument: an image reference, `scratch`, or a stage's name."""
    base_stage: int | None
    platform: str | None
    from_: From
    instructions: list[Instruction]
    deps: set[int] = field(default_factory=set)


@dataclass
class BuildPlan:
    """Stages, the build's ARG values and which stages the target needs."""

    dockerfile: Dockerfile
    stages: list[Stage]
    order: list[int]
    """Indexes of the stages to build, in file order (the target last)."""
    global_args: dict[str, str]
    """Global ARGs (declared before the first FROM) with their resolved values."""
    build_args: dict[str, str]
    auto_args: dict[str, str]
    target: int
    declared_globals: frozenset[str] = frozenset()

    @property
    def needed(self) -> list[Stage]:
        return [self.stages[i] for i in self.order]

    def unused_build_args(self) -> list[str]:
        """--build-arg names no ARG of the built stages (or the global scope) declares
        (docker warns about these); the predefined proxy args are always used."""
        declared = set(self.declared_globals)
        for st in self.needed:
            for ins in st.instructions:
                if isinstance(ins, Arg):
                    declared.update(name for name, _ in ins.pairs)
        return sorted(k for k in self.build_args if k not in declared and k not in PROXY_ARGS)

    def stage_by_ref(self, ref: str, before: int | None = None) -> Stage | None:
        """A stage by name (case-insensitive) or index, as COPY --from refers to them."""
        if ref.isdigit():
            i = int(ref)
            return self.stages[i] if i < len(self.stages) else None
        low = ref.lower()
        for s in self.stages:
            if s.name == low and (before is None or s.index < before):
                return s
        return None


def plan_build(
    source: str | Dockerfile,
    *,
    filename: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    build_platform: Platform | None = None,
    target_platform: str | Platform | None = None,
) -> BuildPlan:
    """Parse, split into stages, resolve FROM lines with the global ARGs, prune to target."""
    df = parse(source, filename) if isinstance(source, str) else source
    instrs = parse_all(df)
    bargs = dict(build_args or {})
    tplat = parse_platform(target_platform) if isinstance(target_platform, str) else target_platform
    auto = platform_args(build_platform, tplat)
    global_args: dict[str, str] = {}
    declared_globals: set[str] = set()
    stages: list[Stage] = []
    for ins in instrs:
        if isinstance(ins, From):
            scope = {**auto, **global_args}
            try:
                base = expand_word(ins.image, scope, df.escape)
                plat = expand_word(ins.platform, scope, df.escape) if ins.platform else None
            except DockerfileSyntaxError as e:
                raise ins.error(str(e)) from None
            if not base:
                raise ins.error(f"base name ({ins.image}) should not be blank")
            idx = len(stages)
            base_stage = None
            for s in stages:
                if s.name == base.lower():
                    base_stage = s.index
            stages.append(Stage(idx, ins.name, base, base_stage, plat, ins, []))
            if ins.name and any(s.name == ins.name for s in stages[:-1]):
                raise ins.error(f"duplicate stage name {ins.name!r}")
            continue
        if not stages:
            if not isinstance(ins, Arg):
                raise ins.error("only ARG may come before the first FROM")
            for name, default in ins.pairs:
                declared_globals.add(name)
                if name in bargs:
                    global_args[name] = bargs[name]
                elif default is not None:
                    try:
                        global_args[name] = expand_word(default, {**auto, **global_args}, df.escape)
                    except DockerfileSyntaxError as e:
                        raise ins.error(str(e)) from None
            continue
        stages[-1].instructions.append(ins)
    if not stages:
        raise DockerfileSyntaxError(f"{df.filename}: no FROM instruction (no build stage)")
    for st in stages:
        _collect_deps(st, stages, df.escape, global_args, bargs)
    if target is None:
        tidx = len(stages) - 1
    else:
        found = [s.index for s in stages if s.name == target.lower()]
        if not found:
            known = ", ".join(s.name for s in stages if s.name) or "none"
            raise BuildError(f"target stage {target!r} not found (named stages: {known})")
        tidx = found[0]
    needed: set[int] = set()
    _visit(tidx, stages, needed, [])
    return BuildPlan(
        df, stages, sorted(needed), global_args, bargs, auto, tidx, frozenset(declared_globals)
    )


def _visit(i: int, stages: list[Stage], seen: set[int], path: list[int]) -> None:
    if i in path:
        names = " -> ".join(stages[j].name or str(j) for j in [*path, i])
        raise BuildError(f"circular dependency between stages: {names}")
    if i in seen:
        return
    path.append(i)
    for d in sorted(stages[i].deps):
        _visit(d, stages, seen, path)
    path.pop()
    seen.add(i)


def _collect_deps(
    st: Stage,
    stages: list[Stage],
    escape: str,
    global_args: dict[str, str],
    bargs: dict[str, str],
) -> None:
    """Stage references; --from values are expanded with what is known before building
    (the stage's ARGs and ENVs, not the base image's ENV)."""
    if st.base_stage is not None:
        st.deps.add(st.base_stage)
    scope: dict[str, str] = {}
    for ins in st.instructions:
        try:
            _deps_of(ins, st, stages, escape, global_args, bargs, scope)
        except DockerfileSyntaxError as e:
            if str(e).startswith(f"{ins.filename}:"):
                raise
            raise ins.error(str(e)) from None


def _deps_of(
    ins: Instruction,
    st: Stage,
    stages: list[Stage],
    escape: str,
    global_args: dict[str, str],
    bargs: dict[str, str],
    scope: dict[str, str],
) -> None:
    if isinstance(ins, Arg):
        for name, default in ins.pairs:
            if name in bargs:
                scope[name] = bargs[name]
            elif default is not None:
                scope[name] = expand_word(default, scope, escape)
            elif name in global_args:
                scope[name] = global_args[name]
    elif isinstance(ins, Env):
        for k, v in ins.pairs:
            scope[expand_word(k, scope, escape)] = expand_word(v, scope, escape)
    refs: list[str] = []
    if type(ins) is Copy and ins.from_:
        refs.append(ins.from_)
    if isinstance(ins, Run):
        refs.extend(m.get("from") or "" for m in ins.mounts if m.get("from"))
    for raw in refs:
        ref = expand_word(raw, scope, escape)
        if ref.isdigit():
            i = int(ref)
            if i >= len(stages):
                raise ins.error(f"--from={ref}: there is no stage {i}")
            if i == st.index:
                raise ins.error(f"--from={ref}: a stage cannot copy from itself")
            st.deps.add(i)
            continue
        for other in stages:
            if other.name == ref.lower():
                if other.index == st.index:
                    raise ins.error(f"--from={ref}: a stage cannot copy from itself")
                st.deps.add(other.index)

"""Apply instructions to an image config, as the builder does for metadata-only steps.

Pure (no I/O): the builder gives it the base image's config and gets back the
new config plus, for COPY/ADD, the instruction with its variables expanded
(what the cache key and the copy need) and, for RUN, the environment to run in.
The config dict uses the image-config key names (Env, Cmd, Entrypoint, ...,
and docker's Healthcheck, OnBuild and Shell).
"""

from __future__ import annotations

import copy
import dataclasses
import posixpath
import re
import signal
from collections import ChainMap
from collections.abc import Callable, Mapping
from typing import Any

from portside.build.dockerfile.expand import expand_heredoc, expand_word, expand_words
from portside.build.dockerfile.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    check_mount,
    parse_instruction,
)
from portside.build.dockerfile.parser import Dockerfile, node_from_line
from portside.build.stages import PROXY_ARGS, BuildPlan, Stage
from portside.errors import BuildError, DockerfileSyntaxError

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def scratch_config() -> dict[str, Any]:
    """The config a stage FROM scratch starts with (docker and buildah both set PATH)."""
    return {"Env": [DEFAULT_PATH]}


_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")


def _valid_signal(sig: str) -> bool:
    if sig.isdigit():
        return 0 < int(sig) < 65
    name = sig.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name):
        return True
    return name in signal.Signals.__members__


class StageEvaluator:
    """One stage's config and variable scope, stepped instruction by instruction."""

    def __init__(
        self,
        plan: BuildPlan,
        stage: Stage,
        base_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.plan = plan
        self.stage = stage
        self.escape = plan.dockerfile.escape
        self.config: dict[str, Any] = copy.deepcopy(dict(base_config or {}))
        self.args: dict[str, str] = {}
        self.declared: set[str] = set()
        self.cmd_set = False
        self.author: str | None = None
        env = self.config.get("Env") or []
        if env:
            self.config["Env"] = list(env)
        self._env = dict(kv.partition("=")[::2] for kv in env)
        self._env_index = {kv.partition("=")[0]: i for i, kv in enumerate(env)}
        # A base image's ONBUILD triggers run first in the child and are not inherited.
        self.triggers: list[Instruction] = [
            self._trigger(t) for t in (self.config.pop("OnBuild", None) or [])
        ]

    def _trigger(self, text: str) -> Instruction:
        df = Dockerfile(filename=f"ONBUILD of {self.stage.base}", nodes=[], escape=self.escape)
        node = node_from_line(text, self.stage.from_.line, self.stage.from_.line, [], df)
        return parse_instruction(node, df.filename, self.escape)

    # -- variables -------------------------------------------------------------------------
    def env_list(self) -> list[str]:
        return list(self.config.get("Env") or [])

    def scope(self) -> Mapping[str, str]:
        """What $VAR means now: the stage's ARGs, overridden by ENV (docs: ENV wins)."""
        return ChainMap(self._env, self.args)

    def run_environment(self) -> list[str]:
        """The environment of a RUN: ENV, then declared ARGs and proxy build-args ENV lacks."""
        env = self.env_list()
        have = {kv.partition("=")[0] for kv in env}
        extra = dict(self.args)
        for k, v in self.plan.build_args.items():
            if k in PROXY_ARGS:
                extra.setdefault(k, v)
        env += [f"{k}={v}" for k, v in extra.items() if k not in have]
        return env

    def word(self, ins: Instruction, raw: str, scope: Mapping[str, str] | None = None) -> str:
        try:
            return expand_word(raw, self.scope() if scope is None else scope, self.escape)
        except DockerfileSyntaxError as e:
            raise ins.error(str(e)) from None

    def _heredoc(self, ins: Instruction, text: str, scope: Mapping[str, str]) -> str:
        try:
            return expand_heredoc(text, scope, self.escape)
        except DockerfileSyntaxError as e:
            raise ins.error(str(e)) from None

    def words(self, ins: Instruction, raw: str) -> list[str]:
        try:
            return expand_words(raw, self.scope(), self.escape)
        except DockerfileSyntaxError as e:
            raise ins.error(str(e)) from None

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    # -- stepping --------------------------------------------------------------------------
    def apply(self, ins: Instruction) -> Instruction:
        """Apply one instruction; returns it with variables expanded where the language says."""
        cfg = self.config
        if isinstance(ins, From):
            raise ins.error("FROM starts a new stage; give each stage its own evaluator")
        if isinstance(ins, Arg):
            for name, default in ins.pairs:
                self.declared.add(name)
                if name in self.plan.build_args:
                    self.args[name] = self.plan.build_args[name]
                elif default is not None:
                    self.args[name] = self.word(ins, default)
                elif name in self.plan.global_args:
                    self.args[name] = self.plan.global_args[name]
                elif name in self.plan.auto_args:
                    self.args[name] = self.plan.auto_args[name]
            return ins
        if isinstance(ins, Env):
            scope = self.scope()
            pairs = [(self.word(ins, k, scope), self.word(ins, v, scope)) for k, v in ins.pairs]
            env = cfg.get("Env")
            if env is None:
                env = cfg["Env"] = []
            index = self._env_index
            for k, v in pairs:
                if not k:
                    raise ins.error("empty variable name")
                if k in index:
                    env[index[k]] = f"{k}={v}"
                else:
                    index[k] = len(env)
                    env.append(f"{k}={v}")
                self._env[k] = v
            return dataclasses.replace(ins, pairs=tuple(pairs))
        if isinstance(ins, Label):
            scope = self.scope()
            pairs = [(self.word(ins, k, scope), self.word(ins, v, scope)) for k, v in ins.pairs]
            labels = dict(cfg.get("Labels") or {})
            labels.update(pairs)
            cfg["Labels"] = labels
            return dataclasses.replace(ins, pairs=tuple(pairs))
        if isinstance(ins, Expose):
            ports = dict(cfg.get("ExposedPorts") or {})
            out = []
            for raw in ins.ports:
                for p in self.words(ins, raw):
                    for key in _port_keys(ins, p):
                        ports[key] = {}
                        out.append(key)
            cfg["ExposedPorts"] = ports
            return dataclasses.replace(ins, ports=tuple(out))
        if isinstance(ins, User):
            user = self.word(ins, ins.user)
            if not user:
                raise ins.error("empty user")
            cfg["User"] = user
            return dataclasses.replace(ins, user=user)
        if isinstance(ins, Workdir):
            path = self.word(ins, ins.path)
            if not path:
                raise ins.error("empty path")
            path = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", path))
            cfg["WorkingDir"] = "/" + path.lstrip("/")
            return dataclasses.replace(ins, path=cfg["WorkingDir"])
        if isinstance(ins, Cmd):
            cfg["Cmd"] = ins.command.resolve(self.shell())
            self.cmd_set = True
            return ins
        if isinstance(ins, Entrypoint):
            cfg["Entrypoint"] = ins.command.resolve(self.shell())
            if ins.command.shell and not ins.command.args[0]:
                cfg["Entrypoint"] = None
            if not self.cmd_set:
                cfg["Cmd"] = None
            return ins
        if isinstance(ins, Volume):
            vols = dict(cfg.get("Volumes") or {})
            paths = []
            for raw in ins.paths:
                p = self.word(ins, raw)
                if not p.strip():
                    raise ins.error("VOLUME specified can not be an empty string")
                vols[p] = {}
                paths.append(p)
            cfg["Volumes"] = vols
            return dataclasses.replace(ins, paths=tuple(paths))
        if isinstance(ins, StopSignal):
            sig = self.word(ins, ins.signal)
            if not _valid_signal(sig):
                raise ins.error(f"invalid signal {sig!r}")
            cfg["StopSignal"] = sig
            return dataclasses.replace(ins, signal=sig)
        if isinstance(ins, Healthcheck):
            hc: dict[str, Any] = {"Test": list(ins.test)}
            for key, value in (
                ("Interval", ins.interval),
                ("Timeout", ins.timeout),
                ("StartPeriod", ins.start_period),
                ("StartInterval", ins.start_interval),
                ("Retries", ins.retries),
            ):
                if value:
                    hc[key] = value
            cfg["Healthcheck"] = hc
            return ins
        if isinstance(ins, Shell):
            cfg["Shell"] = list(ins.args)
            return ins
        if isinstance(ins, Onbuild):
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), ins.expression]
            return ins
        if isinstance(ins, Maintainer):
            self.author = ins.name
            return ins
        if isinstance(ins, Copy):
            return self._copy(ins)
        if isinstance(ins, Run):
            if not ins.mounts:
                return ins
            scope = self.scope()
            mounts = tuple(
                dataclasses.replace(
                    m, options=tuple((k, self.word(ins, v, scope)) for k, v in m.options)
                )
                for m in ins.mounts
            )
            for m in mounts:
                check_mount(m, ins.error)
            return dataclasses.replace(ins, mounts=mounts)
        raise ins.error("not supported by the evaluator")

    def _copy(self, ins: Copy) -> Copy:
        scope = self.scope()

        def opt(v: str | None) -> str | None:
            return None if v is None else self.word(ins, v, scope)

        sources = tuple(s if s.startswith("<<") else self.word(ins, s, scope) for s in ins.sources)
        heredocs = tuple(
            dataclasses.replace(h, content=self._heredoc(ins, h.content, scope))
            if h.expand and ins.keyword in ("COPY", "ADD")
            else h
            for h in ins.heredocs
        )
        changes: dict[str, Any] = dict(
            sources=sources,
            dest=self.word(ins, ins.dest, scope),
            heredocs=heredocs,
            chown=opt(ins.chown),
            chmod=opt(ins.chmod),
            excludes=tuple(self.word(ins, e, scope) for e in ins.excludes),
        )
        if isinstance(ins, Add):
            changes["checksum"] = opt(ins.checksum)
        else:
            changes["from_"] = opt(ins.from_)
        return dataclasses.replace(ins, **changes)


def _port_keys(ins: Instruction, spec: str) -> list[str]:
    m = _PORT_RE.match(spec)
    if not m:
        raise ins.error(f"invalid port {spec!r}: expected PORT[-END][/PROTO]")
    start = int(m.group(1))
    end = int(m.group(2) or start)
    proto = (m.group(3) or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise ins.error(f"invalid protocol {proto!r} in {spec!r}")
    if not 0 < start <= end <= 65535:
        raise ins.error(f"invalid port range {spec!r}")
    # A range stays one key, as buildah and podman write it (docker lists each port).
    return [f"{start}/{proto}" if start == end else f"{start}-{end}/{proto}"]


BaseResolver = Callable[[str, "str | None"], Mapping[str, Any]]


def evaluate_metadata(
    plan: BuildPlan,
    base_config: BaseResolver | None = None,
    *,
    skip: tuple[type[Instruction], ...] = (Copy,),
) -> dict[int, StageEvaluator]:
    """Evaluate the needed stages' metadata only (no files, no RUN): a stage FROM scratch
    starts empty, FROM <stage> from that stage's result, else from base_config(image,
    platform). Instructions of the types in `skip` are expanded but change nothing."""
    done: dict[int, StageEvaluator] = {}
    for st in plan.needed:
        if st.base_stage is not None:
            base: Mapping[str, Any] = done[st.base_stage].config
        elif st.base == "scratch":
            base = scratch_config()
        elif base_config is not None:
            base = base_config(st.base, st.platform)
        else:
            raise BuildError(f"no config for base image {st.base!r}")
        ev = StageEvaluator(plan, st, base)
        for ins in [*ev.triggers, *st.instructions]:
            if isinstance(ins, Run) and not isinstance(ins, skip):
                raise ins.error("RUN needs the builder (a container); metadata only here")
            ev.apply(ins)
        done[st.index] = ev
    return done


NOP = "/bin/sh -c #(nop) "


def created_by(
    ins: Instruction,
    *,
    source_ref: str | None = None,
    dest: str | None = None,
    shell: list[str] | None = None,
    stage_args: Mapping[str, str] | None = None,
) -> str:
    """The history `created_by` text, in buildah's (and classic docker's) form: metadata
    steps are `/bin/sh -c #(nop) ` and the instruction as written; COPY/ADD name what
    they copied (`source_ref`, e.g. `file:<sha256 hex>`, see copy_source_ref) and where;
    RUN is the command as run; ARG lists every stage ARG that has a value so far, sorted
    (`stage_args`: StageEvaluator.args after applying it), as buildah writes it."""
    if isinstance(ins, Copy):
        return f"{NOP}{ins.keyword} {source_ref or 'unknown'} in {dest or ins.dest} "
    if isinstance(ins, Run):
        if ins.command.shell:
            text = " ".join([*(shell or DEFAULT_SHELL), *_run_flags(ins), ins.command.args[0]])
        else:
            text = " ".join(ins.command.args)
        if stage_args:
            # docker's classic builder and buildah: "|N K=V ... " names the build args in
            # effect (N counts the words, as buildah counts them)
            pairs = " ".join(f"{k}={v}" for k, v in sorted(stage_args.items()))
            text = f"|{len(pairs.split(' '))} {pairs} {text}"
        return text
    if isinstance(ins, Arg):
        names = sorted(stage_args) if stage_args is not None else [n for n, _ in ins.pairs]
        return NOP + "ARG " + " ".join(names)
    return NOP + ins.original


def _run_flags(ins: Run) -> list[str]:
    """RUN's flags as written (buildah keeps them in created_by, e.g. --mount=...)."""
    words = ins.original.split()[1:]
    out = []
    for w in words:
        if not w.startswith("--") or w == "--":
            break
        out.append(w)
    return out


def copy_source_ref(kinds: list[str], digest: str) -> str:
    """`file:`, `dir:` or `multi:` (several sources) and the content hash's hex."""
    prefix = "multi" if len(kinds) != 1 else ("dir" if kinds[0] == "dir" else "file")
    return f"{prefix}:{digest.removeprefix('sha256:')}"

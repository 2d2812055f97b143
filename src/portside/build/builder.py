"""The builder: stages in order (only those the target needs), each instruction a step.

A step that changes files (RUN, COPY, ADD) runs in a workspace over the parent's
layer chain and becomes a layer (the diff of the workspace); a metadata step
changes only the config. Each step's result is cached under a key made of its
parent's key, the expanded instruction and, for COPY/ADD, the content of what
is copied (cache.py). With `layers=False` (or `--squash` for the last stage) a
stage keeps one workspace and commits one layer at its end, as buildah does.

The result is written into the image store like any other image (config,
manifest, blobs in the content store; names set at commit).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portside.build.cache import BuildCache, step_key
from portside.build.context import (
    BuildContext,
    _follow,
    add_source_kind,
    tar_compression,
)
from portside.build.dockerfile.instructions import (
    Add,
    Arg,
    Copy,
    Instruction,
    Maintainer,
    Run,
    run_command,
)
from portside.build.evaluate import (
    DEFAULT_PATH,
    StageEvaluator,
    copy_source_ref,
    created_by,
)
from portside.build.progress import Progress
from portside.build.stages import BuildPlan, Stage, plan_build
from portside.errors import (
    BuildError,
    BuildStepFailed,
    DockerfileSyntaxError,
    NotFound,
    PortsideError,
)
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest

if TYPE_CHECKING:
    from portside.build.workspace import View, Workspace
    from portside.content.store import Lease
    from portside.engine.local import LocalEngine
    from portside.images.store import ImageRecord

DOCKER_ONLY = ("Healthcheck", "OnBuild", "Shell")


@dataclass
class BuildOptions:
    """What `portside build` was asked for (podman's flags)."""

    context: Path
    dockerfile_text: str
    dockerfile_name: str = "Containerfile"
    tags: list[str] = field(default_factory=list)
    target: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pull: str = "missing"
    quiet: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    layers: bool = True
    format: str = "oci"
    runtime: str | None = None
    network: str = "host"
    iidfile: str | None = None
    squash: bool = False
    compression: str = "gzip"
    outputs: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    """--secret id -> file (RUN --mount=type=secret); never part of a cache key."""
    env: list[str] = field(default_factory=list)
    """--env K=V: added to the built image's Env (not to RUN steps), as podman does."""
    annotations: dict[str, str] = field(default_factory=dict)
    ignorefile: str | None = None


@dataclass
class ImageState:
    """An image in the making: its config document, layer descriptors and cache key."""

    config: dict[str, Any]
    layers: list[dict[str, Any]]
    key: str

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def chain(self) -> str | None:
        from portside.storage.layers import chain_of

        ids = self.diff_ids
        return str(chain_of(ids)) if ids else None

    @property
    def image_id(self) -> str:
        raw = json.dumps(self.config, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config, "layers": self.layers}

    def copy(self) -> ImageState:
        return ImageState(copy.deepcopy(self.config), [dict(d) for d in self.layers], self.key)


def _now() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        t = _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
    else:
        t = _dt.datetime.now(_dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _mkdtemp(prefix: str, dir: Path) -> str:
    """A temp dir under RUNROOT/build, named so reap_stale can tell a killed build's."""
    from portside.build.workspace import owned_name

    path = dir / "build" / f"{owned_name('buildtmp')}-{prefix.strip('-')}"
    path.mkdir(parents=True)
    return str(path)


def _workspace(layers: Any, parent: str | None) -> Workspace:
    from portside.build.workspace import Workspace

    return Workspace(layers, parent)


def _oci_layer(desc: dict[str, Any]) -> dict[str, Any]:
    media = str(desc.get("mediaType") or mt.OCI_LAYER_GZIP)
    if mt.is_docker(media) and not mt.is_nondistributable(media):
        media = mt.layer_type(mt.layer_compression(media))
    return {"mediaType": media, "digest": desc["digest"], "size": desc["size"]}


def _describe(ins: Instruction) -> dict[str, Any]:
    """The instruction's meaning for the cache key: every field but where it was written."""
    d = {
        f.name: getattr(ins, f.name)
        for f in dataclasses.fields(ins)
        if f.name not in ("line", "end_line", "filename", "trigger")
    }
    d["type"] = type(ins).__name__
    return d


class Builder:
    def __init__(self, engine: LocalEngine, opts: BuildOptions) -> None:
        self.engine = engine
        self.opts = opts
        self.progress = Progress(opts.quiet)
        self.cache = BuildCache(engine.root)
        self.results: dict[int, ImageState] = {}
        if opts.ignorefile:
            from portside.build.context import IgnoreMatcher

            try:
                lines = Path(opts.ignorefile).read_text().splitlines()
            except OSError as e:
                raise BuildError(f"--ignorefile {opts.ignorefile}: {e.strerror}") from None
            root = Path(opts.context)
            if not root.is_dir():
                raise BuildError(f"build context {str(root)!r} is not a directory")
            self.ctx = BuildContext(root, IgnoreMatcher(lines, opts.ignorefile))
        else:
            self.ctx = BuildContext.from_directory(opts.context, opts.dockerfile_name)
        self._lease: Lease | None = None
        self._views: list[View] = []
        self._plan: BuildPlan | None = None
        self._downloads: dict[str, Path] = {}
        self._quiet_done = False
        self._view_roots: dict[str, Path] = {}
        self._stage_prefix = ""
        self._tmpdirs: list[str] = []

    # -- the whole build --------------------------------------------------------------
    def build(self) -> ImageRecord:
        try:
            return self._build()
        finally:
            self.cache.close()

    def _build(self) -> ImageRecord:
        o = self.opts
        plan = plan_build(
            o.dockerfile_text,
            filename=o.dockerfile_name,
            build_args=o.build_args,
            target=o.target,
        )
        self._plan = plan
        for name in plan.unused_build_args():
            self.progress.warn(f"one or more build args were not consumed: [{name}]")
        from portside.build.workspace import reap_stale

        reap_stale(self.engine)
        content = self.engine.images.content
        self._lease = content.lease()
        try:
            stages = plan.needed
            if len(stages) > 1:
                self._stage_prefix = f"[{len(stages)}/{len(stages)}] "
            for i, st in enumerate(stages):
                last = i == len(stages) - 1
                self.results[st.index] = self._stage(plan, st, i + 1, len(stages), last)
            final = self.results[plan.target]
            return self._commit(final)
        finally:
            import shutil

            for v in self._views:
                v.close()
            for d in self._tmpdirs:
                shutil.rmtree(d, ignore_errors=True)
            self._lease.release()

    # -- one stage ----------------------------------------------------------------------
    def _base(self, plan: BuildPlan, st: Stage) -> ImageState:
        if st.base_stage is not None:
            return self.results[st.base_stage].copy()
        if st.base == "scratch":
            from portside.oci.platform import host_platform

            p = host_platform()
            cfg: dict[str, Any] = {
                "architecture": p.architecture,
                "os": p.os,
                "config": {"Env": [DEFAULT_PATH]},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }
            return ImageState(cfg, [], step_key("scratch"))
        rec = self._image(st.base)
        store = self.engine.images
        cfg = store.config(rec)
        layers = [_oci_layer(d) for d in store.layers(rec)]
        self._unpacked(rec, cfg)
        for d in layers:
            self._keep(d["digest"])
        return ImageState(dict(cfg), layers, step_key("image", str(rec.config_digest)))

    def _unpacked(self, rec: ImageRecord, cfg: dict[str, Any]) -> str | None:
        """The image's top chain ID, its layers unpacked first if they are not."""
        from portside.storage.layers import chain_of

        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        if not diff_ids:
            return None
        top = str(chain_of(diff_ids))
        if self.engine.layers.get(top) is None:
            from portside.images.pull import unpack_image

            unpack_image(self.engine.images, self.engine.layers, rec)
        return top

    def _image(self, ref: str) -> ImageRecord:
        policy = {"true": "always", "false": "missing"}.get(self.opts.pull, self.opts.pull)
        rec: ImageRecord = self.engine.ensure_image(ref, policy)
        return rec

    def _keep(self, digest: str) -> None:
        if self._lease is not None:
            self._lease.add(digest)

    def _stage(
        self, plan: BuildPlan, st: Stage, stage_no: int, stages: int, last: bool
    ) -> ImageState:
        instrs: list[Instruction] = list(st.instructions)
        total = len(instrs) + 1
        self.progress.step(stage_no, stages, 1, total, st.from_.original)
        state = self._base(plan, st)
        ev = StageEvaluator(plan, st, state.config.get("config") or {})
        if ev.triggers:
            instrs = [*ev.triggers, *instrs]
            total += len(ev.triggers)
        # one workspace for the whole stage: --layers=false, or --squash on the last stage
        single = not self.opts.layers or (self.opts.squash and last)
        use_cache = not single
        ws: Workspace | None = None
        pending_layer = False
        try:
            for n, ins in enumerate(instrs, start=2):
                # buildah prints no "--> ID" for the last step of the last stage: COMMIT follows
                self._quiet_done = last and n == len(instrs) + 1
                self.progress.step(stage_no, stages, n, total, ins.original)
                exp = ev.apply(ins)
                if isinstance(exp, Run | Copy):
                    key, extra = self._file_step_key(state, exp, ev)
                    if use_cache and not self.opts.no_cache:
                        hit = self._cached(key)
                        if hit is not None:
                            state = hit
                            continue
                    if single:
                        if ws is None:
                            ws = _workspace(self.engine.layers, state.chain)
                        self._do(exp, ev, ws, extra, n)
                        state = self._metadata(state, exp, ev, key, extra, empty=True)
                        pending_layer = True
                        continue
                    with _workspace(self.engine.layers, state.chain) as w:
                        self._do(exp, ev, w, extra, n)
                        layer = w.commit(self.engine.images.content, self.opts.compression)
                    self._keep(str(layer.descriptor["digest"]))
                    state = self._metadata(state, exp, ev, key, extra, empty=False)
                    state.layers.append(layer.descriptor)
                    state.config["rootfs"]["diff_ids"].append(layer.diff_id)
                    self._stored(key, state)
                    continue
                key = step_key(state.key, _describe(exp), self._arg_values(exp, ev))
                if use_cache and not self.opts.no_cache:
                    hit = self._cached(key)
                    if hit is not None:
                        state = hit
                        continue
                state = self._metadata(state, exp, ev, key, {}, empty=True)
                if use_cache:
                    self._stored(key, state)
            if ws is not None and pending_layer:
                layer = ws.commit(self.engine.images.content, self.opts.compression)
                self._keep(str(layer.descriptor["digest"]))
                state.layers.append(layer.descriptor)
                state.config["rootfs"]["diff_ids"].append(layer.diff_id)
                # buildah puts the stage's one layer on its last instruction
                state.config["history"][-1].pop("empty_layer", None)
            if single and not last:
                self.progress.done(state.image_id)
            return state
        finally:
            if ws is not None:
                ws.close()

    def _arg_values(self, ins: Instruction, ev: StageEvaluator) -> dict[str, str]:
        if isinstance(ins, Arg):
            return {name: ev.args.get(name, "") for name, _ in ins.pairs}
        return {}

    def _cached(self, key: str) -> ImageState | None:
        doc = self.cache.get(key)
        if doc is None:
            return None
        state = ImageState(doc["config"], doc["layers"], key)
        content = self.engine.images.content
        for d in state.layers:
            if not content.has(d["digest"]):
                return None
            self._keep(d["digest"])
        chain = state.chain
        if chain is not None and self.engine.layers.get(chain) is None:
            try:
                pairs = [
                    (diff, content.blob_path(d["digest"]))
                    for diff, d in zip(state.diff_ids, state.layers, strict=True)
                ]
                self.engine.layers.unpack_chain(pairs)
            except Exception:
                return None
        self.progress.cached(state.image_id)
        self.progress.done(state.image_id)
        return state

    def _stored(self, key: str, state: ImageState) -> None:
        self.cache.put(key, state.to_json())
        if not self._quiet_done:
            self.progress.done(state.image_id)

    def _metadata(
        self,
        state: ImageState,
        ins: Instruction,
        ev: StageEvaluator,
        key: str,
        extra: dict[str, Any],
        *,
        empty: bool,
    ) -> ImageState:
        new = ImageState(copy.deepcopy(state.config), [dict(d) for d in state.layers], key)
        new.config["config"] = copy.deepcopy(ev.config)
        new.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        new.config["rootfs"].setdefault("diff_ids", [])
        now = _now()
        new.config["created"] = now
        entry: dict[str, Any] = {
            "created": now,
            "created_by": created_by(
                ins,
                source_ref=extra.get("source_ref"),
                dest=extra.get("dest"),
                shell=ev.shell(),
                stage_args=ev.args,
            ),
        }
        if isinstance(ins, Maintainer) or ev.author:
            new.config["author"] = ev.author
            entry["author"] = ev.author
        if empty:
            entry["empty_layer"] = True
        new.config["history"] = [*(new.config.get("history") or []), entry]
        return new

    # -- file steps -----------------------------------------------------------------------
    def _file_step_key(
        self, state: ImageState, ins: Run | Copy, ev: StageEvaluator
    ) -> tuple[str, dict[str, Any]]:
        extra: dict[str, Any] = {}
        if isinstance(ins, Run):
            mounts = [self._mount_source_key(m.type, dict(m.options)) for m in ins.mounts]
            key = step_key(
                state.key,
                _describe(ins),
                ev.run_environment(),
                ev.shell(),
                self._network(ins),
                mounts,
            )
            return key, extra
        workdir = ev.config.get("WorkingDir") or "/"
        local = [s for s in ins.sources if not s.startswith("<<")]
        kinds: list[str] = []
        if isinstance(ins, Add):
            remote = [s for s in local if add_source_kind(s) != "local"]
            for s in remote:
                if add_source_kind(s) == "git":
                    raise ins.error(f"{s}: git sources are not supported by this builder")
            local = [s for s in local if add_source_kind(s) == "local"]
        else:
            remote = []
        if not isinstance(ins, Add) and ins.from_:
            src_key = self._from_key(ins.from_, ins)
            digest = step_key(src_key, local)
            from portside.runtime.rootfs import secure_join

            root = str(self._from_root(ins.from_, ins))
            kinds = ["dir" if os.path.isdir(secure_join(root, s)) else "file" for s in local]
        else:
            try:
                digest = (
                    self.ctx.content_hash(local, ins.excludes, self.cache.file_digest)
                    if local
                    else step_key("none")
                )
                for s in self.ctx.resolve_sources(local) if local else []:
                    full = self.ctx.root / s if s != "." else self.ctx.root
                    kinds.append("dir" if full.is_dir() else "file")
            except BuildError as e:
                raise ins.error(str(e)) from None
        heredocs = [(h.name, h.content) for h in ins.heredocs]
        kinds += ["file"] * (len(heredocs) + len(remote))
        # a URL's content decides, not its address: fetched now (once; the copy uses it)
        fetched = [self._fetch(url, ins) for url in remote if isinstance(ins, Add)]
        key = step_key(state.key, _describe(ins), workdir, digest, heredocs, fetched)
        extra["source_ref"] = copy_source_ref(kinds or ["file"], digest.removeprefix("sha256:"))
        extra["dest"] = ins.dest  # as written (expanded), as buildah records it
        return key, extra

    def _from_key(self, ref: str, ins: Instruction) -> str:
        st = self._stage_ref(ref)
        if st is not None:
            return self.results[st].key
        try:
            rec = self._image(ref)
        except NotFound as e:
            raise ins.error(f"--from={ref}: {e}") from None
        return step_key("image", str(rec.config_digest))

    def _stage_ref(self, ref: str) -> int | None:
        """A built stage by name or index; None means an image reference."""
        st = self._plan.stage_by_ref(ref) if self._plan is not None else None
        if st is None or st.index not in self.results:
            return None
        return st.index

    def _mount_source_key(self, mtype: str, opts: dict[str, str]) -> Any:
        if mtype == "bind" and not opts.get("from"):
            src = opts.get("source") or "."
            try:
                return [mtype, opts, self.ctx.content_hash([src], (), self.cache.file_digest)]
            except BuildError:
                return [mtype, opts]
        if mtype == "bind" and opts.get("from"):
            return [mtype, opts, self._from_key_plain(opts["from"])]
        return [mtype, opts]

    def _from_key_plain(self, ref: str) -> str:
        st = self._stage_ref(ref)
        if st is not None:
            return self.results[st].key
        return step_key("image", ref)

    def _network(self, ins: Run) -> str:
        return self.opts.network if ins.network == "default" else ins.network

    def _do(
        self, ins: Run | Copy, ev: StageEvaluator, ws: Workspace, extra: dict[str, Any], n: int
    ) -> None:
        if isinstance(ins, Run):
            try:
                self._run(ins, ev, ws)
            except (BuildStepFailed, DockerfileSyntaxError):
                raise
            except PortsideError as e:
                # e.g. USER names nobody in /etc/passwd: say which step, as podman does
                raise BuildError(f'error building at STEP "{ins.original}": {e}') from None
        else:
            try:
                self._copy(ins, ev, ws)
            except BuildError as e:
                if str(e).startswith(f"{ins.filename}:"):
                    raise
                raise ins.error(str(e)) from None
            except OSError as e:
                raise ins.error(f"{e.strerror}: {e.filename or ''}".rstrip(": ")) from None

    def _run(self, ins: Run, ev: StageEvaluator, ws: Workspace) -> None:
        from portside.build.runner import RunRequest, run_step

        if ins.security == "insecure":
            raise ins.error("--security=insecure is not allowed by this builder")
        cmd = run_command(ins, ev.shell())
        have = {kv.partition("=")[0] for kv in ev.env_list()}
        extra_env = [kv for kv in ev.run_environment() if kv.partition("=")[0] not in have]
        tmpdirs: list[str] = []
        try:
            made = [self._run_mount(ins, m.type, dict(m.options), tmpdirs) for m in ins.mounts]
            mounts = [m for m in made if m is not None]
            req = RunRequest(
                argv=cmd.argv if cmd.script is None else cmd.args,
                config=dict(ev.config),
                env=extra_env,
                network=self._network(ins),
                runtime=self.opts.runtime,
                mounts=mounts,
                script=cmd.script,
            )
            code = run_step(self.engine, ws.rootfs, req, self.progress.output)
        finally:
            import shutil

            for d in tmpdirs:
                shutil.rmtree(d, ignore_errors=True)
        if code != 0:
            self.progress.failed_output()
            raise BuildStepFailed(
                f'error building at STEP "{ins.original}": exit status {code}', code
            )

    def _run_mount(
        self, ins: Run, mtype: str, opts: dict[str, str], tmpdirs: list[str]
    ) -> dict[str, Any] | None:
        target = opts.get("target") or ""
        if not target.startswith("/"):
            target = posixpath.join("/", target)
        rw = opts.get("rw", "false").lower() == "true" and opts.get("ro") != "true"
        if mtype == "tmpfs":
            size = opts.get("size")
            options = ["nosuid", "nodev", *([f"size={size}"] if size else [])]
            return {"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options}
        if mtype == "bind":
            src = opts.get("source") or "."
            if opts.get("from"):
                root = self._from_root(opts["from"], ins)
            else:
                root = self.ctx.root
                if self.ctx.excluded(self.ctx.normalize(src)):
                    raise ins.error(f"--mount: {src} is excluded by .containerignore/.dockerignore")
            from portside.runtime.rootfs import secure_join

            host = secure_join(str(root), src)
            if not os.path.lexists(host):
                raise ins.error(f"--mount: source {src} not found")
            if not opts.get("from") and self.ctx.excluded(os.path.relpath(host, root)):
                # through a symlink, too: what the ignore file hides is never mounted
                raise ins.error(f"--mount: {src} is excluded by .containerignore/.dockerignore")
            if rw:
                # writes to a bind mount are thrown away (buildkit's rule): mount a copy
                import shutil

                tmp = _mkdtemp(prefix="build-bind-", dir=self.engine.runroot)
                tmpdirs.append(tmp)
                copy_to = os.path.join(tmp, "src")
                if os.path.isdir(host):
                    shutil.copytree(host, copy_to, symlinks=True)
                else:
                    shutil.copy2(host, copy_to)
                host = copy_to
            options = ["rbind", "ro" if not rw else "rw"]
            return {"destination": target, "type": "bind", "source": host, "options": options}
        if mtype == "cache":
            ident = opts.get("id") or target
            path = Path(self.engine.root) / "build" / "mounts" / step_key("cache", ident)[:32]
            if not path.exists():
                path.mkdir(parents=True, exist_ok=True)
                os.chmod(path, int(opts.get("mode") or "755", 8))
                os.chown(path, int(opts.get("uid") or 0), int(opts.get("gid") or 0))
            ro = opts.get("ro") == "true"
            options = ["rbind", "ro" if ro else "rw"]
            return {"destination": target, "type": "bind", "source": str(path), "options": options}
        if mtype == "secret":
            return self._secret_mount(ins, opts, tmpdirs)
        raise ins.error(
            f"--mount=type={mtype} is not supported by this builder "
            "(bind, cache, tmpfs and secret are)"
        )

    def _secret_mount(
        self, ins: Run, opts: dict[str, str], tmpdirs: list[str]
    ) -> dict[str, Any] | None:
        """A --secret file, copied with the mount's mode and owner (0400 root by default)
        and bound read-only; the mount point is removed after the step, so the secret
        never reaches a layer."""
        ident = opts.get("id") or posixpath.basename(opts.get("target") or "")
        source = self.opts.secrets.get(ident)
        if source is None:
            if opts.get("required", "false").lower() == "true":
                raise ins.error(f"--mount=type=secret: no --secret id={ident} was given")
            return None
        target = opts.get("target") or f"/run/secrets/{ident}"
        if not target.startswith("/"):
            target = posixpath.join("/run/secrets", target)
        tmp = _mkdtemp(prefix="build-secret-", dir=self.engine.runroot)
        tmpdirs.append(tmp)
        copy_to = os.path.join(tmp, "secret")
        try:
            with open(source, "rb") as fin:
                data = fin.read()
        except OSError as e:
            raise BuildError(f"--secret id={ident}: {source}: {e.strerror}") from None
        fd = os.open(copy_to, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as fout:
            fout.write(data)
        os.chmod(copy_to, int(opts.get("mode") or "0400", 8))
        os.chown(copy_to, int(opts.get("uid") or 0), int(opts.get("gid") or 0))
        return {
            "destination": target,
            "type": "bind",
            "source": copy_to,
            "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
        }

    def _from_root(self, ref: str, ins: Instruction) -> Path:
        """The files of a stage or an image, mounted read-only once per build."""
        if ref in self._view_roots:
            return self._view_roots[ref]
        st = self._stage_ref(ref)
        if st is not None:
            chain = self.results[st].chain
        else:
            try:
                rec = self._image(ref)
            except NotFound as e:
                raise ins.error(f"--from={ref}: {e}") from None
            chain = self._unpacked(rec, self.engine.images.config(rec))
        from portside.build.workspace import View

        view = View(self.engine.layers, chain)
        self._views.append(view)
        self._view_roots[ref] = view.rootfs
        return view.rootfs

    def _copy(self, ins: Copy, ev: StageEvaluator, ws: Workspace) -> None:
        from portside.build import steps

        owner = steps.resolve_chown(ins.chown, ws.rootfs)
        from_stage = not isinstance(ins, Add) and bool(ins.from_)
        copier = steps.Copier(ws.rootfs, owner, ins.chmod, keep=from_stage)
        workdir = ev.config.get("WorkingDir") or "/"
        target, dest_is_dir = steps.plan_dest(self.ctx, list(ins.sources), ins.dest, workdir)
        if not isinstance(ins, Add) and ins.from_:
            root = self._from_root(ins.from_, ins)
            ctx = BuildContext(root)
        else:
            ctx = self.ctx
        local = [s for s in ins.sources if not s.startswith("<<")]
        remote: list[str] = []
        archives: list[str] = []
        if isinstance(ins, Add):
            remote = [s for s in local if add_source_kind(s) == "url"]
            local = [s for s in local if add_source_kind(s) == "local"]
            if ins.unpack is not False:
                for rel in ctx.resolve_sources(local) if local else []:
                    # resolved inside the context: a directory symlink must not reach a host tar
                    link, path = ctx.root / rel, ctx.root / _follow(ctx, rel)
                    if path.is_file() and not link.is_symlink() and tar_compression(path):
                        archives.append(rel)
        count = len(ins.sources)
        if count > 1 and not dest_is_dir:
            raise BuildError(
                f"{ins.dest}: with more than one source the destination must be a directory "
                "ending in /"
            )
        plain = [s for s in local if ctx.normalize(s) not in archives]
        if plain:
            items = ctx.plan_copy(
                plain, ins.dest, workdir=workdir, parents=ins.parents, excludes=ins.excludes
            )
            if not dest_is_dir:
                items = steps.into_existing_dir(copier, items, target)
            named = {_follow(ctx, ctx.normalize(s)) for s in ctx.resolve_sources(plain)}
            tops = {it.dest for it in items if it.kind == "dir" and it.src in named}
            copier.copy_items(ctx.root, items, tops)
        for rel in archives:
            steps.extract_tar(copier, ctx.root / _follow(ctx, rel), target)
        for h in ins.heredocs:
            name = "<<" + h.name
            if name not in ins.sources:
                continue
            dest = posixpath.join(target, h.name) if dest_is_dir else target
            copier.write(dest, h.content.encode(), 0o644)
        for url in remote:
            got = self._downloads[url]
            dest = posixpath.join(target, got.name) if dest_is_dir else target
            copier.put(got, dest, "file")

    def _fetch(self, url: str, ins: Add) -> list[str]:
        """Download an ADD URL once per build (checksum verified); (url, content sha256)."""
        from portside.build import steps

        got = self._downloads.get(url)
        if got is None:
            tmp = Path(_mkdtemp(prefix="build-add-", dir=self.engine.runroot))
            self._tmpdirs.append(str(tmp))
            try:
                got = steps.fetch_url(url, tmp, ins.checksum)
            except BuildError as e:
                raise ins.error(str(e)) from None
            self._downloads[url] = got
        from portside.build.context import sha256_file

        return [url, sha256_file(str(got)).hex()]

    # -- the image ----------------------------------------------------------------------
    def _existing(self, manifest_digest: Digest) -> ImageRecord | None:
        store = self.engine.images
        if not store.content.has(manifest_digest):
            return None
        try:
            return store.get_by_digest(manifest_digest)
        except NotFound:
            return None

    def _commit(self, state: ImageState) -> ImageRecord:
        from portside.images.store import normalize_name

        o = self.opts
        cfg = copy.deepcopy(state.config)
        inner = dict(cfg.get("config") or {})
        if o.labels:
            inner["Labels"] = {**(inner.get("Labels") or {}), **o.labels}
        if o.env:
            env = list(inner.get("Env") or [])
            for kv in o.env:
                key = kv.partition("=")[0]
                env = [e for e in env if e.partition("=")[0] != key] + [kv]
            inner["Env"] = env
        docker = o.format == "docker"
        if not docker:
            for k in DOCKER_ONLY:
                if k in inner:
                    self.progress.warn(
                        f"{k.upper() if k != 'OnBuild' else 'ONBUILD'} is not supported for "
                        "OCI image format and will be ignored; use --format docker"
                    )
                    inner.pop(k)
        cfg["config"] = inner
        cfg.setdefault("created", _now())
        names = [normalize_name(t) for t in o.tags]
        self.progress.commit(self._stage_prefix + (o.tags[0] if o.tags else ""))
        config_bytes = json.dumps(cfg, separators=(",", ":")).encode()
        layers = []
        for d in state.layers:
            media = str(d["mediaType"])
            if docker:
                media = mt.layer_type(mt.layer_compression(media), docker=True)
            layers.append({"mediaType": media, "digest": d["digest"], "size": d["size"]})
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG,
                "digest": str(Digest.from_bytes(config_bytes)),
                "size": len(config_bytes),
            },
            "layers": layers,
        }
        if o.annotations:
            manifest["annotations"] = dict(o.annotations)
        manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
        store = self.engine.images
        image = self._existing(Digest.from_bytes(manifest_bytes))
        if image is not None:
            # an unchanged rebuild: the same manifest is stored already; only the names move
            for name in names:
                store.set_name(name, image.manifest_digest)
        else:
            from portside.images.copy import CopyOptions
            from portside.images.copy import copy as copy_image
            from portside.images.transports.local import LocalDestination

            media = str(manifest["mediaType"])
            source = _BuiltSource(self.engine, config_bytes, manifest_bytes, media)
            dest = LocalDestination(store, names=names)
            try:
                copy_image(source, dest, CopyOptions())
            finally:
                dest.close()
            assert dest.image is not None
            image = dest.image
        self.progress.done(image.id)
        for name in names:
            self.progress.tagged(name)
        if o.outputs:
            from portside.build.output import write_output

            for spec in o.outputs:
                write_output(self.engine, image, spec, names[0] if names else None)
        if o.iidfile:
            tmp = Path(o.iidfile + ".tmp")
            tmp.write_text(f"sha256:{image.id}")
            os.replace(tmp, o.iidfile)
        self.progress.final(image.id)
        return image


class _BuiltSource:
    """ImageSource of the built image: its config and manifest, blobs from the store."""

    def __init__(self, engine: LocalEngine, config: bytes, manifest: bytes, media: str) -> None:
        self.engine = engine
        self.config = config
        self.config_digest = str(Digest.from_bytes(config))
        self.manifest = manifest
        self.media = media

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        return self.manifest, self.media

    def get_blob(self, blob: Any) -> Iterator[bytes]:
        if blob.digest == self.config_digest:
            return iter([self.config])
        return self.engine.images.content.read_chunks(blob.digest)

    def close(self) -> None:
        pass


def build(engine: LocalEngine, opts: BuildOptions) -> ImageRecord:
    b = Builder(engine, opts)
    return b.build()

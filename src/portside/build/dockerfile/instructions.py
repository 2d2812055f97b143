"""Typed instructions: what each keyword's flags and arguments mean, validated.

Values that the builder expands (see expand.EXPANDING) are kept raw here, with
their quotes, because ARG and ENV values are only known while building; the
evaluator expands them. Everything that does not depend on variables (flag
names, enumerations, JSON forms, nesting rules) is checked now, so a bad file
fails before any step runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from portside.build.dockerfile.expand import unquote
from portside.build.dockerfile.parser import Dockerfile, Heredoc, Node, split_raw_words
from portside.errors import DockerfileSyntaxError

_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9}
_UNITS["h"] = 3600 * 10**9


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Where an instruction was written, so every error can name its file and line."""

    keyword: str
    line: int
    end_line: int
    original: str
    filename: str = "Dockerfile"

    def error(self, msg: str) -> DockerfileSyntaxError:
        return DockerfileSyntaxError(f"{self.filename}:{self.line}: {self.keyword}: {msg}")


@dataclass(frozen=True, kw_only=True)
class CommandForm:
    """Exec form (`["a", "b"]`, shell=False) or shell form (one string, shell=True)."""

    args: tuple[str, ...]
    shell: bool

    def resolve(self, shell: list[str]) -> list[str]:
        """The argv a container runs: shell form goes through SHELL (default /bin/sh -c)."""
        return [*shell, self.args[0]] if self.shell else list(self.args)


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    """FROM: the base (image, stage or scratch), kept raw until global ARGs expand it."""

    image: str
    name: str | None = None
    platform: str | None = None


@dataclass(frozen=True, kw_only=True)
class Mount:
    """One RUN --mount: its type and options in the order written."""

    type: str
    options: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.options:
            if k == key:
                return v
        return default


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    command: CommandForm
    heredocs: tuple[Heredoc, ...] = ()
    network: str = "default"
    mounts: tuple[Mount, ...] = ()
    security: str = "sandbox"


@dataclass(frozen=True)
class RunCommand:
    """What a RUN executes. With `script` set, the builder writes it to a file (mode 0755)
    in the container and runs that file with `args` after it."""

    argv: list[str]
    script: str | None = None
    args: list[str] = field(default_factory=list)


def run_command(run: Run, shell: list[str]) -> RunCommand:
    """RUN's argv, heredocs included, as buildkit runs them.

    `RUN <<EOF` alone runs the body: as a file if it starts with `#!`, else through the
    shell. A command line with heredocs goes to the shell whole, bodies appended after it
    with their terminators, so the shell feeds them to the commands as here-documents.
    """
    if not run.heredocs or not run.command.shell:
        return RunCommand(argv=run.command.resolve(shell))
    line = run.command.args[0]
    words = split_raw_words(line)
    if len(run.heredocs) == 1 and words and _heredoc_word(words[0]):
        body = run.heredocs[0].content
        if body.startswith("#!"):
            return RunCommand(argv=[], script=body, args=[unquote(w) for w in words[1:]])
        return RunCommand(argv=[*shell, body])
    script = line + "\n" + "".join(f"{h.content}{h.name}\n" for h in run.heredocs)
    return RunCommand(argv=[*shell, script])


def _heredoc_word(word: str) -> bool:
    from portside.build.dockerfile.parser import parse_heredoc_word

    return parse_heredoc_word(word) is not None


@dataclass(frozen=True, kw_only=True)
class Cmd(Instruction):
    """CMD: the default command (exec or shell form)."""

    command: CommandForm


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Instruction):
    """ENTRYPOINT: what the container runs, CMD becoming its arguments."""

    command: CommandForm


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    """ENV: name/value pairs, values raw until the stage's variables are known."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    """LABEL: key/value pairs, raw until expanded."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    """ARG: names with optional defaults (None: no default)."""

    pairs: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    """EXPOSE: port specs, raw until expanded."""

    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    """USER: user[:group], raw until expanded."""

    user: str


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    """WORKDIR: a path, relative ones taken from the current working directory."""

    path: str


@dataclass(frozen=True, kw_only=True)
class Copy(Instruction):
    """COPY: sources, destination and the flags that change what lands where."""

    sources: tuple[str, ...]
    dest: str
    heredocs: tuple[Heredoc, ...] = ()
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()
    json_form: bool = False


@dataclass(frozen=True, kw_only=True)
class Add(Copy):
    """ADD: COPY plus URLs, archives unpacked and their checksums."""

    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    """VOLUME: mount points recorded in the config."""

    paths: tuple[str, ...]
    json_form: bool = False


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    """STOPSIGNAL: a signal name or number, checked once expanded."""

    signal: str


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """test is ("NONE",) or ("CMD", argv...) or ("CMD-SHELL", cmd); durations in ns."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    """SHELL: the argv prefix shell-form commands run with."""

    args: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """ONBUILD: a trigger stored in the config, run by a child image's build."""

    expression: str
    trigger: Instruction = field(compare=False)


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    """MAINTAINER (deprecated): the image's author."""

    name: str


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration (what docker uses for HEALTHCHECK) -> nanoseconds."""
    s = text.strip()
    neg = s.startswith("-")
    s = s.lstrip("+-")
    if s == "0":
        return 0
    pos = 0
    total = 0.0
    if not s:
        raise ValueError(text)
    while pos < len(s):
        m = _DURATION_RE.match(s, pos)
        if not m:
            raise ValueError(text)
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return -int(total) if neg else int(total)


class _Flags:
    """The flags an instruction accepts; an unknown or malformed one is an error."""

    def __init__(self, node: Node, filename: str, allowed: dict[str, str]) -> None:
        self.values: dict[str, list[str | None]] = {}
        self.node = node
        self.filename = filename
        for raw in node.flags:
            body = raw[2:]
            name, eq, value = body.partition("=")
            kind = allowed.get(name)
            if kind is None:
                raise self.error(f"unknown flag: --{name}")
            if kind == "bool":
                if eq and value.lower() not in ("true", "false"):
                    raise self.error(f"--{name} expects true or false, got {value!r}")
                self.values.setdefault(name, []).append(value.lower() if eq else "true")
                continue
            if not eq or value == "":
                raise self.error(f"--{name} requires a value")
            if kind == "str" and name in self.values:
                raise self.error(f"--{name} given twice")
            self.values.setdefault(name, []).append(value)

    def error(self, msg: str) -> DockerfileSyntaxError:
        return DockerfileSyntaxError(
            f"{self.filename}:{self.node.line}: {self.node.keyword}: {msg}"
        )

    def one(self, name: str) -> str | None:
        v = self.values.get(name)
        return v[-1] if v else None

    def on(self, name: str) -> bool:
        v = self.values.get(name)
        return v is not None and bool(v) and v[-1] == "true"

    def many(self, name: str) -> list[str]:
        return [x for x in self.values.get(name, []) if x is not None]


def _json_list(text: str) -> list[str] | None:
    """The exec form: a JSON array of strings; anything else is not exec form."""
    t = text.strip()
    if not t.startswith("["):
        return None
    try:
        value = json.loads(t)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    return None


def _command(node: Node, err: Any, allow_empty: bool = False) -> CommandForm:
    exec_form = _json_list(node.args)
    if exec_form is not None:
        if not exec_form and not allow_empty:
            raise err("requires at least one argument")
        return CommandForm(args=tuple(exec_form), shell=False)
    if not node.args and not allow_empty:
        raise err("requires at least one argument")
    return CommandForm(args=(node.args,), shell=True)


_MOUNT_KEYS: dict[str, set[str]] = {
    "bind": {"target", "source", "from", "rw", "readwrite", "ro", "readonly"},
    "cache": {
        "target",
        "id",
        "sharing",
        "from",
        "source",
        "mode",
        "uid",
        "gid",
        "ro",
        "readonly",
        "rw",
        "readwrite",
    },
    "tmpfs": {"target", "size"},
    "secret": {"id", "target", "required", "mode", "uid", "gid", "env"},
    "ssh": {"id", "target", "required", "mode", "uid", "gid"},
}
_ALIASES = {"dst": "target", "destination": "target", "src": "source", "readwrite": "rw"}
_ALIASES["readonly"] = "ro"


def parse_mount(spec: str, err: Any) -> Mount:
    """`--mount=type=cache,target=/x,...`: keys checked per type, values validated."""
    opts: list[tuple[str, str]] = []
    mtype = "bind"
    for part in spec.split(","):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if key == "type":
            mtype = value
            continue
        key = _ALIASES.get(key, key)
        if not eq:
            if key in ("ro", "rw", "required"):
                value = "true"
            else:
                raise err(f"--mount: {key} requires a value")
        opts.append((key, value))
    if mtype not in _MOUNT_KEYS:
        raise err(f"--mount: unknown type {mtype!r} (bind, cache, tmpfs, secret, ssh)")
    mount = Mount(type=mtype, options=tuple(opts))
    check_mount(mount, err, expanded=False)
    return mount


def check_mount(mount: Mount, err: Any, expanded: bool = True) -> None:
    """Option names per type and value syntax; before expansion, values holding `$` wait."""
    allowed = {_ALIASES.get(k, k) for k in _MOUNT_KEYS[mount.type]}
    seen: dict[str, str] = {}
    for key, value in mount.options:
        if key not in allowed:
            raise err(f"--mount: unknown option {key!r} for type={mount.type}")
        seen[key] = value
        if "$" in value and not expanded:
            continue
        if key in ("ro", "rw", "required") and value.lower() not in ("true", "false"):
            raise err(f"--mount: {key} expects true or false, got {value!r}")
        if key in ("uid", "gid") and not value.isdigit():
            raise err(f"--mount: {key} must be a number, got {value!r}")
        if key == "mode" and not re.fullmatch(r"0?[0-7]{1,4}", value):
            raise err(f"--mount: mode must be octal, got {value!r}")
        if key == "sharing" and value not in ("shared", "private", "locked"):
            raise err(f"--mount: sharing must be shared, private or locked, got {value!r}")
        if key == "size" and not re.fullmatch(r"\d+[kKmMgGbB]?", value):
            raise err(f"--mount: bad tmpfs size {value!r}")
    if mount.type in ("bind", "cache", "tmpfs") and not seen.get("target"):
        raise err(f"--mount: type={mount.type} requires target")
    if mount.type == "secret" and "id" not in seen and "target" not in seen:
        raise err("--mount: type=secret requires id or target")


def _pairs(node: Node, err: Any, escape: str) -> tuple[tuple[str, str], ...]:
    """ENV/LABEL arguments: `k=v ...`, or the legacy `k v w` (one pair, rest of line)."""
    words = split_raw_words(node.args, escape)
    if not words:
        raise err("requires at least one argument")
    if "=" not in words[0]:
        parts = re.split(r"[ \t]+", node.args.strip(), maxsplit=1)
        if len(parts) < 2:
            raise err("must have two arguments (name value, or name=value ...)")
        return ((parts[0], parts[1]),)
    pairs = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq:
            raise err(f"can't find = in {w!r}: must be of the form name=value")
        if not key:
            raise err(f"empty name in {w!r}")
        pairs.append((key, value))
    return tuple(pairs)


def _copy(node: Node, filename: str, escape: str, err: Any) -> Copy:
    is_add = node.keyword == "ADD"
    allowed = {
        "from": "str",
        "chown": "str",
        "chmod": "str",
        "link": "bool",
        "parents": "bool",
        "exclude": "multi",
    }
    if is_add:
        allowed.update({"checksum": "str", "keep-git-dir": "bool", "unpack": "bool"})
        del allowed["from"]
    flags = _Flags(node, filename, allowed)
    json_args = _json_list(node.args)
    words = json_args if json_args is not None else split_raw_words(node.args, escape)
    heredoc_names = {h.name for h in node.heredocs}
    if len(words) < 2:
        raise err("requires at least two arguments: source(s) and destination")
    sources = words[:-1]
    if node.heredocs:
        from portside.build.dockerfile.parser import parse_heredoc_word

        kept = []
        for s in sources:
            hd = parse_heredoc_word(s)
            kept.append("<<" + hd[0] if hd and hd[0] in heredoc_names else s)
        sources = kept
    chmod = flags.one("chmod")
    chown = flags.one("chown")
    if chown is not None and "$" not in chown and not re.fullmatch(r"[^:\s]+(:[^:\s]+)?", chown):
        raise err(f"--chown: expected USER[:GROUP], got {chown!r}")
    symbolic = r"[ugoa]*[-+=][rwxXst]*(,[ugoa]*[-+=][rwxXst]*)*"
    if (
        chmod is not None
        and "$" not in chmod
        and not re.fullmatch(r"[0-7]{3,4}", chmod)
        and not re.fullmatch(symbolic, chmod)
    ):
        raise err(f"--chmod: invalid mode {chmod!r}")
    kwargs: dict[str, Any] = dict(
        keyword=node.keyword,
        line=node.line,
        end_line=node.end_line,
        original=node.original,
        filename=filename,
        sources=tuple(sources),
        dest=words[-1],
        heredocs=node.heredocs,
        chown=chown,
        chmod=chmod,
        link=flags.on("link"),
        parents=flags.on("parents"),
        excludes=tuple(flags.many("exclude")),
        json_form=json_args is not None,
    )
    if not is_add:
        return Copy(from_=flags.one("from"), **kwargs)
    checksum = flags.one("checksum")
    if checksum is not None:
        if not all(re.match(r"^(https?|git)://|^git@", s) for s in sources):
            raise err("--checksum can only be used with HTTP(S) or git sources")
        if "$" not in checksum and not re.fullmatch(r"sha(256|384|512):[0-9a-f]+", checksum):
            raise err(f"--checksum: expected sha256:<hex>, got {checksum!r}")
    unpack = flags.on("unpack") if "unpack" in flags.values else None
    return Add(
        checksum=checksum,
        keep_git_dir=flags.on("keep-git-dir"),
        unpack=unpack,
        **kwargs,
    )


def _healthcheck(node: Node, filename: str, err: Any) -> dict[str, Any]:
    flags = _Flags(
        node,
        filename,
        {
            "interval": "str",
            "timeout": "str",
            "start-period": "str",
            "start-interval": "str",
            "retries": "str",
        },
    )
    parts = re.split(r"[ \t]+", node.args.strip(), maxsplit=1)
    kind = parts[0].upper()
    if kind == "NONE":
        if len(parts) > 1 or node.flags:
            raise err("NONE takes no other arguments")
        return {"test": ("NONE",)}
    if kind != "CMD":
        raise err(f"expected CMD or NONE, got {parts[0]!r}")
    body = parts[1] if len(parts) > 1 else ""
    sub = Node("CMD", (), body, node.line, node.end_line, node.original)
    cmd = _command(sub, err)
    test = ("CMD", *cmd.args) if not cmd.shell else ("CMD-SHELL", cmd.args[0])
    out: dict[str, Any] = {"test": test}
    for name in ("interval", "timeout", "start-period", "start-interval"):
        raw = flags.one(name)
        if raw is None:
            continue
        try:
            ns = parse_duration(raw)
        except ValueError:
            raise err(f"--{name}: invalid duration {raw!r}") from None
        if ns != 0 and ns < 10**6:
            raise err(f"--{name} cannot be less than 1ms, got {raw!r}")
        out[name.replace("-", "_")] = ns
    retries = flags.one("retries")
    if retries is not None:
        if not re.fullmatch(r"-?\d+", retries):
            raise err(f"--retries: not a number: {retries!r}")
        if int(retries) < 0:
            raise err("--retries cannot be negative")
        out["retries"] = int(retries)
    return out


def parse_instruction(node: Node, filename: str = "Dockerfile", escape: str = "\\") -> Instruction:
    """One Node -> its typed instruction, or DockerfileSyntaxError naming file:line: KEYWORD."""
    kw = node.keyword

    def err(msg: str) -> DockerfileSyntaxError:
        return DockerfileSyntaxError(f"{filename}:{node.line}: {kw}: {msg}")

    base: dict[str, Any] = dict(
        keyword=kw,
        line=node.line,
        end_line=node.end_line,
        original=node.original,
        filename=filename,
    )
    no_flags = {"CMD", "ENTRYPOINT", "ENV", "LABEL", "ARG", "EXPOSE", "USER", "WORKDIR"}
    no_flags |= {"VOLUME", "STOPSIGNAL", "SHELL", "ONBUILD", "MAINTAINER"}
    if kw in no_flags:
        _Flags(node, filename, {})
    if kw == "FROM":
        flags = _Flags(node, filename, {"platform": "str"})
        words = split_raw_words(node.args, escape)
        if len(words) == 2 or len(words) > 3 or not words:
            raise err("expected FROM [--platform=p] image [AS name]")
        name = None
        if len(words) == 3:
            if words[1].upper() != "AS":
                raise err(f"expected AS, got {words[1]!r}")
            name = words[2].lower()
            if not re.fullmatch(r"[a-z][a-z0-9_.-]*", name):
                raise err(f"invalid stage name {words[2]!r}")
        return From(image=words[0], name=name, platform=flags.one("platform"), **base)
    if kw == "RUN":
        flags = _Flags(node, filename, {"network": "str", "mount": "multi", "security": "str"})
        network = flags.one("network") or "default"
        if network not in ("default", "none", "host"):
            raise err(f"--network must be default, none or host, got {network!r}")
        security = flags.one("security") or "sandbox"
        if security not in ("sandbox", "insecure"):
            raise err(f"--security must be sandbox or insecure, got {security!r}")
        mounts = tuple(parse_mount(m, err) for m in flags.many("mount"))
        return Run(
            command=_command(node, err, allow_empty=bool(node.heredocs)),
            heredocs=node.heredocs,
            network=network,
            mounts=mounts,
            security=security,
            **base,
        )
    if kw == "CMD":
        return Cmd(command=_command(node, err, allow_empty=True), **base)
    if kw == "ENTRYPOINT":
        return Entrypoint(command=_command(node, err, allow_empty=True), **base)
    if kw == "ENV":
        return Env(pairs=_pairs(node, err, escape), **base)
    if kw == "LABEL":
        return Label(pairs=_pairs(node, err, escape), **base)
    if kw == "ARG":
        words = split_raw_words(node.args, escape)
        if not words:
            raise err("requires at least one argument")
        args: list[tuple[str, str | None]] = []
        for w in words:
            name, eq, value = w.partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise err(f"invalid name {name!r}")
            args.append((name, value if eq else None))
        return Arg(pairs=tuple(args), **base)
    if kw == "EXPOSE":
        words = split_raw_words(node.args, escape)
        if not words:
            raise err("requires at least one argument")
        return Expose(ports=tuple(words), **base)
    if kw in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"):
        if not node.args:
            raise err("requires exactly one argument")
        if kw == "USER":
            return User(user=node.args, **base)
        if kw == "WORKDIR":
            return Workdir(path=node.args, **base)
        if kw == "MAINTAINER":
            return Maintainer(name=node.args, **base)
        if len(split_raw_words(node.args, escape)) != 1:
            raise err("requires exactly one argument")
        return StopSignal(signal=node.args, **base)
    if kw in ("COPY", "ADD"):
        return _copy(node, filename, escape, err)
    if kw == "VOLUME":
        exec_form = _json_list(node.args)
        paths = exec_form if exec_form is not None else split_raw_words(node.args, escape)
        if not paths or any(not p.strip() for p in paths):
            raise err("VOLUME specified can not be an empty string")
        return Volume(paths=tuple(paths), json_form=exec_form is not None, **base)
    if kw == "HEALTHCHECK":
        return Healthcheck(**_healthcheck(node, filename, err), **base)
    if kw == "SHELL":
        exec_form = _json_list(node.args)
        if not exec_form:
            raise err('requires the JSON form, e.g. SHELL ["/bin/sh", "-c"]')
        return Shell(args=tuple(exec_form), **base)
    if kw == "ONBUILD":
        parts = re.split(r"[ \t]+", node.args.strip(), maxsplit=1)
        inner_kw = parts[0].upper()
        if not node.args:
            raise err("requires an instruction")
        if inner_kw == "ONBUILD":
            raise err("chaining ONBUILD via ONBUILD ONBUILD isn't allowed")
        if inner_kw in ("FROM", "MAINTAINER"):
            raise err(f"{inner_kw} isn't allowed as an ONBUILD trigger")
        from portside.build.dockerfile.parser import node_from_line

        inner_df = Dockerfile(filename=filename, nodes=[], escape=escape)
        inner = node_from_line(node.args, node.line, node.end_line, [], inner_df)
        trigger = parse_instruction(inner, filename, escape)
        return Onbuild(expression=node.args.strip(), trigger=trigger, **base)
    raise err("unknown instruction")


def parse_all(df: Dockerfile) -> list[Instruction]:
    return [parse_instruction(n, df.filename, df.escape) for n in df.nodes]

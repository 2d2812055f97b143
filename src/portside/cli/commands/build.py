"""`portside build [OPTIONS] [CONTEXT]`: an image from a Containerfile/Dockerfile,
with podman's and docker's flag names. CONTEXT is a directory, a tar file, or `-`
(a tar on stdin); `-f -` reads the Containerfile from stdin."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from portside.cli.commands.create import get_engine
from portside.errors import BuildError, InvalidArgument


def _build_args(values: tuple[str, ...]) -> dict[str, str]:
    """K=V, or K alone: the value from the environment (skipped when unset, as docker)."""
    out: dict[str, str] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"--build-arg {v!r}: expected NAME=VALUE")
        if eq:
            out[k] = val
        elif k in os.environ:
            out[k] = os.environ[k]
    return out


def _secrets(values: tuple[str, ...]) -> dict[str, str]:
    """podman's --secret id=ID,src=PATH (or env=VAR: the variable's value)."""
    out: dict[str, str] = {}
    for v in values:
        fields = dict(part.partition("=")[::2] for part in v.split(",") if part)
        ident = fields.get("id")
        src = fields.get("src") or fields.get("source")
        if not ident:
            raise InvalidArgument(f"--secret {v!r}: id= is required")
        if src is None and fields.get("env"):
            value = os.environ.get(fields["env"])
            if value is None:
                raise InvalidArgument(f"--secret {v!r}: ${fields['env']} is not set")
            import tempfile

            fd, src = tempfile.mkstemp(prefix="portside-secret-")
            os.write(fd, value.encode())
            os.close(fd)
            _TEMP_SECRETS.append(src)
        if not src:
            raise InvalidArgument(f"--secret {v!r}: src= (a file) or env= is required")
        out[ident] = src
    return out


_TEMP_SECRETS: list[str] = []


def _arg_file(path: str) -> dict[str, str]:
    """--build-arg-file: K=V lines, # comments and blank lines skipped."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InvalidArgument(f"--build-arg-file {path}: {e.strerror}") from None
    lines = [ln.strip() for ln in text.splitlines()]
    return _build_args(tuple(ln for ln in lines if ln and not ln.startswith("#")))


def _env(values: tuple[str, ...]) -> list[str]:
    """--env K=V, or K alone: the caller's value (skipped when unset), as podman."""
    out = []
    for v in values:
        k, eq, _ = v.partition("=")
        if not k:
            raise InvalidArgument(f"--env {v!r}: expected NAME=VALUE")
        if eq:
            out.append(v)
        elif k in os.environ:
            out.append(f"{k}={os.environ[k]}")
    return out


def _check_platform(value: str | None) -> None:
    """Builds run on this machine's platform only (no emulation here)."""
    if not value:
        return
    from portside.oci.platform import host_platform, parse_platform

    want = parse_platform(value).normalized()
    have = host_platform()
    if (want.os, want.architecture) != (have.os, have.architecture):
        raise InvalidArgument(f"--platform {value}: only {have} can be built on this machine")


def _labels(values: tuple[str, ...], flag: str = "--label") -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, _, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"{flag} {v!r}: expected KEY=VALUE")
        out[k] = val
    return out


@contextlib.contextmanager
def _context_dir(context: str, runroot: Path) -> Iterator[Path]:
    """The context as a directory: as given, or a tar (file or stdin) unpacked in a temp dir."""
    if context != "-" and Path(context).is_dir():
        yield Path(context)
        return
    import shutil
    import tempfile

    from portside.build.context import BuildContext

    runroot.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-context-", dir=runroot))
    try:
        if context == "-":
            BuildContext.from_tar(sys.stdin.buffer, tmp)
        else:
            if not Path(context).is_file():
                raise BuildError(f"build context {context!r}: no such directory or tar file")
            with open(context, "rb") as f:
                BuildContext.from_tar(f, tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# flags that may stand alone or take `=VALUE` (podman's pflag NoOptDefVal): alone, they
# must not swallow the next word (`build --pull DIR` builds DIR)
_BARE = {"--pull": "--pull=always", "--layers": "--layers=true"}


class _BuildCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        fixed: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                fixed += args[i:]
                break
            fixed.append(_BARE.get(arg, arg))
        return super().parse_args(ctx, fixed)


@click.command(cls=_BuildCommand)
@click.option("--tag", "-t", "tags", multiple=True, metavar="NAME", help="Name the image.")
@click.option("--file", "-f", "file", default=None, help="Containerfile (default: Containerfile, "
              "then Dockerfile in the context; - for stdin).")  # fmt: skip
@click.option("--target", default=None, help="Build up to this stage.")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V", help="Set an ARG.")
@click.option("--no-cache", is_flag=True, help="Do not use cached steps.")
@click.option(
    "--pull",
    default="missing",
    type=click.Choice(["always", "missing", "never", "newer", "true", "false"]),
    help="Pull the base images: always (bare --pull), missing (default), never.",
)
@click.option("--pull-always", is_flag=True, hidden=True)
@click.option("--pull-never", is_flag=True, hidden=True)
@click.option("--quiet", "-q", is_flag=True, help="Print only the image ID.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Add a label.")
@click.option(
    "--layers",
    "layers_flag",
    default="true",
    type=click.Choice(["true", "false", "1", "0"], case_sensitive=False),
    help="Cache each step as a layer (default); false: one layer per stage, no cache.",
)
@click.option("--format", "fmt", type=click.Choice(["oci", "docker"]), default="oci")
@click.option("--runtime", default=None, help="OCI runtime for RUN (runc, crun, PATH).")
@click.option(
    "--network",
    default="host",
    type=click.Choice(["host", "none", "private", "default"]),
    help="Network of RUN steps: host (default), none, or private (a namespace of its own "
    "with loopback only).",
)
@click.option("--iidfile", default=None, help="Write the image ID to this file.")
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    metavar="id=ID,src=PATH",
    help="A secret for RUN --mount=type=secret (file, or env=VAR).",
)
@click.option(
    "--build-arg-file",
    "arg_files",
    multiple=True,
    metavar="FILE",
    help="ARG values from a file of NAME=VALUE lines.",
)
@click.option("--env", "envs", multiple=True, metavar="K=V", help="Add to the image's Env.")
@click.option(
    "--annotation",
    "annotations",
    multiple=True,
    metavar="K=V",
    help="Add an annotation to the image's manifest.",
)
@click.option(
    "--timestamp",
    type=int,
    default=None,
    help="Created time and file times (seconds since the epoch), as SOURCE_DATE_EPOCH.",
)
@click.option("--platform", default=None, help="Only this machine's platform is built.")
@click.option("--ignorefile", default=None, help="Ignore file to use instead of the context's.")
@click.option(
    "--rm/--no-rm",
    "remove",
    default=True,
    hidden=True,
    help="Accepted: no intermediate containers are ever left.",
)
@click.option("--force-rm", is_flag=True, hidden=True)
@click.option("--squash", is_flag=True, help="Squash the new layers of the last stage into one.")
@click.option(
    "--output",
    "-o",
    "outputs",
    multiple=True,
    metavar="type=oci|docker|local|tar,dest=PATH",
    help="Also write the image as an OCI or docker archive, or its files.",
)
@click.argument("context", required=False, default=".")
def build(
    tags: tuple[str, ...],
    file: str | None,
    target: str | None,
    build_args: tuple[str, ...],
    no_cache: bool,
    pull: str,
    pull_always: bool,
    pull_never: bool,
    quiet: bool,
    labels: tuple[str, ...],
    layers_flag: str,
    fmt: str,
    runtime: str | None,
    network: str,
    iidfile: str | None,
    squash: bool,
    outputs: tuple[str, ...],
    secrets: tuple[str, ...],
    arg_files: tuple[str, ...],
    envs: tuple[str, ...],
    annotations: tuple[str, ...],
    timestamp: int | None,
    platform: str | None,
    ignorefile: str | None,
    remove: bool,
    force_rm: bool,
    context: str,
) -> None:
    """Build an image from a Containerfile or Dockerfile."""
    from portside.build.builder import BuildOptions
    from portside.build.builder import build as run_build
    from portside.build.context import find_dockerfile

    if outputs:
        from portside.build.output import parse_output

        for spec in outputs:
            parse_output(spec)  # a bad --output fails before anything is built
    _check_platform(platform)
    if timestamp is not None:
        os.environ["SOURCE_DATE_EPOCH"] = str(timestamp)  # what the layer writer reads
    args: dict[str, str] = {}
    for f in arg_files:
        args.update(_arg_file(f))
    args.update(_build_args(build_args))
    if pull_always:
        pull = "always"
    if pull_never:
        pull = "never"
    engine = get_engine()
    if file == "-" and context == "-":
        raise InvalidArgument("-f - and a context from stdin cannot both read stdin")
    text: str
    name = "Containerfile"
    if file == "-":
        text = sys.stdin.read()
    with _context_dir(context, engine.runroot) as ctx_dir:
        if file != "-":
            path = find_dockerfile(ctx_dir, file)
            if file and context == "-" and not Path(file).is_file():
                path = ctx_dir / file
            try:
                text = path.read_text()
            except OSError as e:
                raise BuildError(f"{path}: {e.strerror}") from None
            name = path.name
        opts = BuildOptions(
            context=ctx_dir,
            dockerfile_text=text,
            dockerfile_name=name,
            tags=list(tags),
            target=target,
            build_args=args,
            no_cache=no_cache,
            pull=pull,
            quiet=quiet,
            labels=_labels(labels),
            layers=layers_flag.lower() in ("true", "1"),
            format=fmt,
            runtime=runtime,
            network="host" if network == "default" else network,
            iidfile=iidfile,
            squash=squash,
            outputs=list(outputs),
            secrets=_secrets(secrets),
            env=_env(envs),
            annotations=_labels(annotations, "--annotation"),
            ignorefile=ignorefile,
        )
        try:
            run_build(engine, opts)
        finally:
            for temp in _TEMP_SECRETS:
                with contextlib.suppress(OSError):
                    os.unlink(temp)

"""`portside create`: a container from an image, not started; its flags are `run`'s too."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from portside.engine.api import CreateOptions
    from portside.engine.local import LocalEngine


def get_engine(ctx: click.Context | None = None) -> LocalEngine:
    """The engine of --root/--runroot/--config, once per CLI call."""
    from portside.engine.local import LocalEngine

    ctx = ctx or click.get_current_context()
    root_ctx = ctx.find_root()
    obj = root_ctx.obj if isinstance(root_ctx.obj, dict) else {}
    engine = obj.get("engine")
    if engine is None:
        from portside.cli.warm import after_reply

        engine = LocalEngine(obj.get("root"), obj.get("runroot"), obj.get("config"))
        engine.defer = after_reply  # removed dirs are deleted once the caller has its answer
        obj["engine"] = engine
        root_ctx.call_on_close(engine.close)
    assert isinstance(engine, LocalEngine)
    return engine


_MULTI = {"multiple": True, "default": ()}
# -h is --hostname here, as in docker; the command's own help is --help only
CMD_SETTINGS: dict[str, Any] = {"allow_interspersed_args": False, "help_option_names": ["--help"]}

CREATE_FLAGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--name",), {"default": None, "help": "Name of the container."}),
    (("-e", "--env"), {**_MULTI, "help": "Set an environment variable (NAME=VALUE or NAME)."}),
    (("--env-file",), {**_MULTI, "help": "Read environment variables from a file."}),
    (("-v", "--volume"), {**_MULTI, "help": "Bind mount or volume: SRC:DST[:ro]."}),
    (("--mount",), {**_MULTI, "help": "type=bind|volume|tmpfs,source=..,target=.."}),
    (("--tmpfs",), {**_MULTI, "help": "Mount a tmpfs: DST[:OPTIONS]."}),
    (("-w", "--workdir"), {"default": None, "help": "Working directory inside the container."}),
    (("-u", "--user"), {"default": None, "help": "USER[:GROUP] (name or number)."}),
    (("--entrypoint",), {"default": None, "help": "Override the image's entrypoint."}),
    (("-h", "--hostname"), {"default": None, "help": "Container host name."}),
    (("-i", "--interactive"), {"is_flag": True, "help": "Keep stdin open."}),
    (("-t", "--tty"), {"is_flag": True, "help": "Allocate a pseudo-terminal."}),
    (("-m", "--memory"), {"default": None, "help": "Memory limit (e.g. 64m)."}),
    (("--memory-swap",), {"default": None, "help": "Memory plus swap limit; -1 = unlimited."}),
    (("--cpus",), {"default": None, "type": float, "help": "Number of CPUs."}),
    (("-c", "--cpu-shares"), {"default": None, "type": int, "help": "CPU shares (weight)."}),
    (("--cpuset-cpus",), {"default": None, "help": "CPUs to run on (0-1, 0,1)."}),
    (("--pids-limit",), {"default": None, "type": int, "help": "Process count limit."}),
    (("--cap-add",), {**_MULTI, "help": "Add a capability."}),
    (("--cap-drop",), {**_MULTI, "help": "Drop a capability."}),
    (("--privileged",), {"is_flag": True, "help": "All capabilities, devices, no seccomp."}),
    (("--security-opt",), {**_MULTI, "help": "seccomp=FILE|unconfined, no-new-privileges."}),
    (("--read-only",), {"is_flag": True, "help": "Mount the root filesystem read-only."}),
    (("--init",), {"is_flag": True, "help": "Run a reaping init as PID 1."}),
    (("--restart",), {"default": "no", "help": "no|on-failure[:N]|always|unless-stopped."}),
    (("-l", "--label"), {**_MULTI, "help": "Set a label KEY=VALUE."}),
    (("--ulimit",), {**_MULTI, "help": "NAME=SOFT[:HARD]."}),
    (("--stop-signal",), {"default": None, "help": "Signal to stop the container."}),
    (("--stop-timeout",), {"default": None, "type": int, "help": "Seconds before SIGKILL."}),
    (("--runtime",), {"default": None, "help": "OCI runtime: portside-runtime, runc, crun, PATH."}),
    (("--log-driver",), {"default": None, "help": "k8s-file, json-file or none."}),
    (("--log-opt",), {**_MULTI, "help": "max-size=SIZE, max-file=N."}),
    (("--health-cmd",), {"default": None, "help": "Command to check health."}),
    (("--health-interval",), {"default": None, "help": "Time between checks (30s)."}),
    (("--health-timeout",), {"default": None, "help": "Time a check may take."}),
    (("--health-retries",), {"default": None, "type": int, "help": "Failures before unhealthy."}),
    (("--health-start-period",), {"default": None, "help": "Grace time after start."}),
    (("--no-healthcheck",), {"is_flag": True, "help": "Disable the image's healthcheck."}),
    (
        ("--network", "--net"),
        {"default": None, "help": "NAME[,NAME..]|none|host|container:ID (default: portside)."},
    ),
    (("--pull",), {"default": "missing", "type": click.Choice(["always", "missing", "never"])}),
    (("-p", "--publish"), {**_MULTI, "help": "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]."}),
    (("-P", "--publish-all"), {"is_flag": True, "help": "Publish the image's exposed ports."}),
    (("--ip",), {"default": None, "help": "IPv4 or IPv6 address on the (first) network."}),
    (("--mac-address",), {"default": None, "help": "MAC address on the (first) network."}),
    (("--network-alias",), {**_MULTI, "help": "Another name on the container's networks."}),
]


def create_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    for names, kwargs in reversed(CREATE_FLAGS):
        f = click.option(*names, **kwargs)(f)
    return f


def _kv(items: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=what)
        out[key] = value
    return out


def make_options(image: str, command: tuple[str, ...], kw: dict[str, Any]) -> CreateOptions:
    """Click's parsed flags -> the engine's CreateOptions (one line on bad values)."""
    from portside.engine.api import CreateOptions
    from portside.engine.specgen import parse_bytes, parse_duration, split_command

    def dur(name: str) -> float | None:
        value = kw.get(name)
        return None if value is None else parse_duration(value, "--" + name.replace("_", "-"))

    swap = kw.get("memory_swap")
    entry = kw.get("entrypoint")
    return CreateOptions(
        image=image,
        command=list(command) or None,
        entrypoint=None if entry is None else (split_command(entry) if entry else []),
        name=kw.get("name"),
        env=list(kw.get("env", ())),
        env_files=list(kw.get("env_file", ())),
        workdir=kw.get("workdir"),
        user=kw.get("user"),
        hostname=kw.get("hostname"),
        volumes=list(kw.get("volume", ())),
        mounts=list(kw.get("mount", ())),
        tmpfs=list(kw.get("tmpfs", ())),
        interactive=bool(kw.get("interactive")),
        tty=bool(kw.get("tty")),
        memory=parse_bytes(kw["memory"], "--memory") if kw.get("memory") else None,
        memory_swap=None
        if swap is None
        else (-1 if swap.strip() == "-1" else parse_bytes(swap, "--memory-swap")),
        cpus=kw.get("cpus"),
        cpu_shares=kw.get("cpu_shares"),
        cpuset_cpus=kw.get("cpuset_cpus"),
        pids_limit=kw.get("pids_limit"),
        cap_add=list(kw.get("cap_add", ())),
        cap_drop=list(kw.get("cap_drop", ())),
        privileged=bool(kw.get("privileged")),
        security_opt=list(kw.get("security_opt", ())),
        read_only=bool(kw.get("read_only")),
        init=bool(kw.get("init")),
        restart=kw.get("restart") or "no",
        labels=_kv(tuple(kw.get("label", ())), "--label"),
        ulimits=list(kw.get("ulimit", ())),
        stop_signal=kw.get("stop_signal"),
        stop_timeout=kw.get("stop_timeout"),
        runtime=kw.get("runtime"),
        log_driver=kw.get("log_driver"),
        log_opts=_kv(tuple(kw.get("log_opt", ())), "--log-opt"),
        health_cmd=kw.get("health_cmd"),
        health_interval=dur("health_interval"),
        health_timeout=dur("health_timeout"),
        health_retries=kw.get("health_retries"),
        health_start_period=dur("health_start_period"),
        no_healthcheck=bool(kw.get("no_healthcheck")),
        network=kw.get("network") or "",
        pull=kw.get("pull") or "missing",
        remove=bool(kw.get("rm")),
        publish=list(kw.get("publish", ())),
        publish_all=bool(kw.get("publish_all")),
        ip=kw.get("ip"),
        mac_address=kw.get("mac_address"),
        network_aliases=list(kw.get("network_alias", ())),
    )


@click.command(context_settings=CMD_SETTINGS)
@create_flags
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def create(image: str, command: tuple[str, ...], **kw: Any) -> None:
    """Create a container (not started); prints its ID."""
    engine = get_engine()
    info = engine.create(make_options(image, command, kw))
    click.echo(info.id)

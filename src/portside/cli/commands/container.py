"""`portside container VERB`: the container verbs under one noun, plus prune and cleanup."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine
from portside.cli.lazy import LazyGroup

_VERBS = {
    "run": "portside.cli.commands.run:run",
    "create": "portside.cli.commands.create:create",
    "start": "portside.cli.commands.start:start",
    "stop": "portside.cli.commands.stop:stop",
    "kill": "portside.cli.commands.kill:kill",
    "restart": "portside.cli.commands.restart:restart",
    "rm": "portside.cli.commands.rm:rm",
    "ls": "portside.cli.commands.ps:ps",
    "ps": "portside.cli.commands.ps:ps",
    "list": "portside.cli.commands.ps:ps",
    "logs": "portside.cli.commands.logs:logs",
    "exec": "portside.cli.commands.exec_cmd:exec_cmd",
    "attach": "portside.cli.commands.attach:attach",
    "wait": "portside.cli.commands.wait:wait",
    "top": "portside.cli.commands.top:top",
    "stats": "portside.cli.commands.stats:stats",
    "pause": "portside.cli.commands.pause:pause",
    "unpause": "portside.cli.commands.unpause:unpause",
    "cp": "portside.cli.commands.cp:cp",
    "rename": "portside.cli.commands.rename:rename",
    "port": "portside.cli.commands.port:port",
}


@click.group(cls=LazyGroup, lazy_commands=_VERBS)
def container() -> None:
    """Manage containers."""


@container.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not ask (never asks anyway).")
def prune(force: bool) -> None:
    """Remove all stopped containers."""
    for cid in get_engine().prune():
        click.echo(cid)


@container.command("inspect")
@click.option("--format", "-f", "fmt", default=None)
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...], fmt: str | None) -> None:
    """Show low-level information on containers."""
    import json

    from portside.cli.commands.inspect import _render
    from portside.engine.inspect import docker_inspect

    engine = get_engine()
    docs = [docker_inspect(engine, engine.record(n)) for n in names]
    if fmt:
        for d in docs:
            click.echo(_render(fmt, d))
    else:
        click.echo(json.dumps(docs, indent=4))


@container.command("cleanup", hidden=True)
@click.option("--rm", "remove", is_flag=True)
@click.argument("cid")
def cleanup(cid: str, remove: bool) -> None:
    """Run by a container's monitor after it exits (podman's exit command)."""
    get_engine().cleanup(cid, remove=remove)

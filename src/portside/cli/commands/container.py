"""`portside container VERB`: the container verbs under one noun, plus prune and cleanup."""

from __future__ import annotations

import importlib

import click

from portside.cli.commands.create import get_engine

_VERBS = {
    "run": "run:run",
    "create": "create:create",
    "start": "start:start",
    "stop": "stop:stop",
    "kill": "kill:kill",
    "restart": "restart:restart",
    "rm": "rm:rm",
    "ls": "ps:ps",
    "ps": "ps:ps",
    "list": "ps:ps",
    "logs": "logs:logs",
    "exec": "exec_cmd:exec_cmd",
    "attach": "attach:attach",
    "wait": "wait:wait",
    "top": "top:top",
    "stats": "stats:stats",
    "pause": "pause:pause",
    "unpause": "unpause:unpause",
    "cp": "cp:cp",
    "rename": "rename:rename",
    "port": "port:port",
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_VERBS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = _VERBS.get(name)
        if target is None:
            return super().get_command(ctx, name)
        module, _, attr = target.partition(":")
        cmd = getattr(importlib.import_module(f"portside.cli.commands.{module}"), attr)
        assert isinstance(cmd, click.Command)
        return cmd


@click.group(cls=_Group)
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

"""`portside exec`: run another process in a running container (through the runtime)."""

from __future__ import annotations

import sys

import click

from portside.cli.commands.create import get_engine


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-e", "--env", multiple=True, help="Set an environment variable.")
@click.option("-u", "--user", default=None, help="USER[:GROUP].")
@click.option("-w", "--workdir", default=None, help="Working directory.")
@click.option("-d", "--detach", is_flag=True, help="Run in the background.")
@click.option("--privileged", is_flag=True, help="All capabilities for this process.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(
    container: str,
    command: tuple[str, ...],
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
    user: str | None,
    workdir: str | None,
    detach: bool,
    privileged: bool,
) -> None:
    """Run a command in a running container."""
    from portside.engine.api import ExecOptions

    code = get_engine().exec(
        container,
        ExecOptions(
            command=list(command),
            interactive=interactive,
            tty=tty,
            env=list(env),
            user=user,
            workdir=workdir,
            detach=detach,
            privileged=privileged,
        ),
    )
    sys.exit(code)

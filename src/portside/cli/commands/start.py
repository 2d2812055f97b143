"""`portside start`: start created or stopped containers, optionally attached."""

from __future__ import annotations

import sys

import click

from portside.cli.commands.create import get_engine


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-a", "--attach", is_flag=True, help="Attach to the output and wait.")
@click.option("-i", "--interactive", is_flag=True, help="Attach stdin.")
@click.argument("containers", nargs=-1, required=True)
def start(containers: tuple[str, ...], attach: bool, interactive: bool) -> None:
    """Start one or more containers."""
    from portside.engine.local import _classify
    from portside.errors import RuntimeFailure

    engine = get_engine()
    if attach or interactive:
        if len(containers) != 1:
            raise click.UsageError("you cannot start and attach multiple containers at once")
        doc = engine.record(containers[0])
        handle = engine.start(doc["id"], attach=True, stdin=interactive)
        with handle.attach() as conn:
            try:
                handle.start()
            except RuntimeFailure as err:
                raise _classify(err) from None
            from portside.cli.commands.attach import relay

            how, exit_doc = relay(conn, stdin=interactive, tty=bool(doc["options"].get("tty")))
        if how == "detached":
            return
        code = (exit_doc or {}).get("exit_code")
        status = int(code) if code is not None else handle.wait().exit_code
        engine.cleanup(doc["id"])
        sys.exit(status)
    for ref in containers:
        engine.start(ref)
        click.echo(ref)

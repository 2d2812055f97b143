"""`portside run`: create, start, attach (or detach), wait and exit with the container's code."""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

from portside.cli.commands.create import CMD_SETTINGS, create_flags, get_engine, make_options

if TYPE_CHECKING:
    from portside.engine.local import LocalEngine

_PROXIED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def _proxy_signals(engine: LocalEngine, cid: str) -> None:
    """docker's --sig-proxy: a signal to `run` goes to the container (which decides)."""
    from portside.errors import PortsideError

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(PortsideError):
            engine.kill(cid, signum)

    for sig in _PROXIED:
        signal.signal(sig, forward)


@click.command(context_settings=CMD_SETTINGS)
@click.option("-d", "--detach", is_flag=True, help="Run in the background, print the ID.")
@click.option("--rm", is_flag=True, help="Remove the container when it exits.")
@create_flags
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(image: str, command: tuple[str, ...], detach: bool, **kw: Any) -> None:
    """Run a command in a new container."""
    from portside.engine.local import _classify
    from portside.errors import PortsideError, RuntimeFailure

    engine = get_engine()
    opts = make_options(image, command, kw)
    info = engine.create(opts)
    cid = info.id
    if detach:
        try:
            engine.start(cid)
        except PortsideError:
            if opts.remove:
                with contextlib.suppress(PortsideError):
                    engine.remove(cid, force=True, volumes=True)
            raise
        click.echo(cid)
        return
    code = 125
    if not opts.tty:
        _proxy_signals(engine, cid)
    try:
        handle = engine.start(cid, attach=True, stdin=opts.interactive)
        with handle.attach() as conn:
            try:
                handle.start()
            except RuntimeFailure as err:
                raise _classify(err) from None
            from portside.cli.commands.attach import relay

            how, exit_doc = relay(conn, stdin=opts.interactive, tty=opts.tty)
        if how == "detached":
            click.echo("", err=True)
            return
        if exit_doc is not None and "exit_code" in exit_doc:
            code = int(exit_doc["exit_code"])
        else:
            code = handle.wait().exit_code
    finally:
        with contextlib.suppress(PortsideError):
            if opts.remove:
                engine.remove(cid, force=True, volumes=True)
            else:
                engine.cleanup(cid)
    sys.exit(code)

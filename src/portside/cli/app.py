"""The `portside` click group: global options, the lazily loaded verbs, and the one place
that turns errors into a line on stderr and an exit status.

Kept apart from `main.py`, the entry point, so that a call the warm CLI serves (warm.py)
never imports click in the calling process.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import click

from portside import __version__
from portside.cli.lazy import LazyGroup
from portside.cli.main import COMMANDS
from portside.errors import PortsideError


class BrokenPipeElsewhere(RuntimeError):
    """An EPIPE from a pipe or socket of the command's own (a helper process, a
    connection), not from portside's stdout or stderr."""


def _output_gone() -> bool:
    """Whether stdout or stderr lost its reader (a pipe's POLLERR, a socket's POLLHUP):
    then an EPIPE is about our own output, as in `portside images | head`."""
    import select

    poller = select.poll()
    for fd in (1, 2):
        poller.register(fd, select.POLLOUT)
    gone = select.POLLERR | select.POLLHUP | select.POLLNVAL
    try:
        return any(events & gone for _, events in poller.poll(0))
    except OSError:
        return True


class PortsideGroup(LazyGroup):
    """The top group. click ends the process with status 1 and not a word on any EPIPE
    escaping a command (meant for a closed stdout); one from anywhere else would be a
    failure nobody can see, so it goes on as an error with its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as err:
            if err.errno != errno.EPIPE or _output_gone():
                raise  # our reader left: click's quiet exit, as before
            raise BrokenPipeElsewhere(
                f"{err} (not on portside's output: stdout and stderr still have readers)"
            ) from err


@click.group(
    cls=PortsideGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(
    __version__, "--version", "-v", prog_name="portside", message="%(prog)s version %(version)s"
)
@click.option(
    "--root",
    envvar="PORTSIDE_ROOT",
    default=None,
    help="Persistent state root (default /var/lib/portside).",
)
@click.option(
    "--runroot",
    envvar="PORTSIDE_RUNROOT",
    default=None,
    help="Run state root on tmpfs (default /run/portside).",
)
@click.option(
    "--config",
    "config_path",
    envvar="PORTSIDE_CONFIG",
    default=None,
    help="Engine settings file (default /etc/portside/portside.toml).",
)
@click.option(
    "--storage-driver",
    envvar="PORTSIDE_STORAGE_DRIVER",
    default=None,
    help="overlay or vfs (default: overlay where the kernel has it, or portside.toml).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    root: str | None,
    runroot: str | None,
    config_path: str | None,
    storage_driver: str | None,
) -> None:
    """portside: run containers the way docker and podman do."""
    if storage_driver:
        # the layer store reads it wherever it is opened (engine, pull, image mount)
        os.environ["PORTSIDE_STORAGE_DRIVER"] = storage_driver
    ctx.obj = {"root": root, "runroot": runroot, "config": config_path}


def run(argv: list[str] | None = None) -> Any:
    """Run the CLI, turning any PortsideError into one line on stderr."""
    try:
        return cli.main(args=argv, prog_name="portside", standalone_mode=False)
    except PortsideError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(125)
    except click.exceptions.NoArgsIsHelpError as err:
        # `portside` with no verb shows the help, as docker does, and exits 0.
        click.echo(err.format_message() if hasattr(err, "format_message") else str(err))
        sys.exit(0)
    except click.ClickException as err:
        click.echo(f"Error: {err.format_message()}", err=True)
        sys.exit(125)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)

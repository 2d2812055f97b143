"""Entry point of the `portside` command.

Subcommands are registered by import path and loaded only when invoked, so
`portside version` does not pay for the image or registry stacks.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from portside import __version__
from portside.cli.lazy import LazyGroup
from portside.errors import PortsideError

# verb -> "module:attribute" of a click command; each component adds its own.
COMMANDS: dict[str, str] = {
    "version": "portside.cli.commands.version:version",
    "pull": "portside.cli.commands.pull:pull",
    "push": "portside.cli.commands.push:push",
    "images": "portside.cli.commands.images:images",
    "rmi": "portside.cli.commands.rmi:rmi",
    "tag": "portside.cli.commands.tag:tag",
    "inspect": "portside.cli.commands.inspect:inspect",
    "login": "portside.cli.commands.login:login",
    "logout": "portside.cli.commands.logout:logout",
    "image": "portside.cli.commands.image:image",
    "system": "portside.cli.commands.system:system",
    "search": "portside.cli.commands.search:search",
    "save": "portside.cli.commands.save:save",
    "load": "portside.cli.commands.load:load",
    "import": "portside.cli.commands.import_cmd:import_image",
    "network": "portside.cli.commands.network:network",
    "run": "portside.cli.commands.run:run",
    "create": "portside.cli.commands.create:create",
    "attach": "portside.cli.commands.attach:attach",
    "start": "portside.cli.commands.start:start",
    "stop": "portside.cli.commands.stop:stop",
    "kill": "portside.cli.commands.kill:kill",
    "restart": "portside.cli.commands.restart:restart",
    "rm": "portside.cli.commands.rm:rm",
    "ps": "portside.cli.commands.ps:ps",
    "logs": "portside.cli.commands.logs:logs",
    "exec": "portside.cli.commands.exec_cmd:exec_cmd",
    "wait": "portside.cli.commands.wait:wait",
    "top": "portside.cli.commands.top:top",
    "stats": "portside.cli.commands.stats:stats",
    "pause": "portside.cli.commands.pause:pause",
    "unpause": "portside.cli.commands.unpause:unpause",
    "cp": "portside.cli.commands.cp:cp",
    "rename": "portside.cli.commands.rename:rename",
    "container": "portside.cli.commands.container:container",
    "volume": "portside.cli.commands.volume:volume",
    "port": "portside.cli.commands.port:port",
    "diff": "portside.cli.commands.diff:diff",
    "commit": "portside.cli.commands.commit:commit",
    "build": "portside.cli.commands.build:build",
}


@click.group(
    cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
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


def main(argv: list[str] | None = None) -> Any:
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

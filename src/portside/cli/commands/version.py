"""`portside version`: what is installed, as `docker version` shows."""

from __future__ import annotations

import platform
import sys

import click

from portside import __version__


@click.command()
@click.option("--format", "-f", "fmt", default=None, help="'json' for machine-readable output.")
def version(fmt: str | None) -> None:
    """Show the portside version information."""
    info = {
        "Version": __version__,
        "PythonVersion": platform.python_version(),
        "OsArch": f"{sys.platform}/{platform.machine()}",
    }
    if fmt == "json":
        import json

        click.echo(json.dumps(info))
        return
    click.echo(f"portside version {__version__}")
    click.echo(f"Python:    {info['PythonVersion']}")
    click.echo(f"OS/Arch:   {info['OsArch']}")

"""`portside volume create|ls|inspect|rm|prune`: named volumes."""

from __future__ import annotations

import json

import click

from portside.cli.commands.create import get_engine


@click.group()
def volume() -> None:
    """Manage volumes."""


@volume.command("create")
@click.option("-d", "--driver", default="local")
@click.option("-l", "--label", multiple=True)
@click.option("-o", "--opt", multiple=True)
@click.argument("name", required=False)
def create(name: str | None, driver: str, label: tuple[str, ...], opt: tuple[str, ...]) -> None:
    """Create a volume."""
    labels = dict(x.partition("=")[::2] for x in label)
    opts = dict(x.partition("=")[::2] for x in opt)
    doc = get_engine().volumes.create(name, labels, driver=driver, options=opts)
    click.echo(doc["Name"])


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--format", "fmt", default=None)
def ls(quiet: bool, fmt: str | None) -> None:
    """List volumes."""
    docs = get_engine().volumes.list()
    if fmt == "json":
        click.echo(json.dumps(docs, indent=4))
        return
    if quiet:
        for d in docs:
            click.echo(d["Name"])
        return
    click.echo(f"{'DRIVER':<10}VOLUME NAME")
    for d in docs:
        click.echo(f"{d['Driver']:<10}{d['Name']}")


@volume.command("inspect")
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...]) -> None:
    """Show volumes' details."""
    engine = get_engine()
    click.echo(json.dumps([engine.volumes.inspect(n) for n in names], indent=4))


@volume.command("rm")
@click.option("-f", "--force", is_flag=True)
@click.argument("names", nargs=-1, required=True)
def rm(names: tuple[str, ...], force: bool) -> None:
    """Remove volumes."""
    engine = get_engine()
    for n in names:
        engine.volumes.remove(n, force=force)
        click.echo(n)


@volume.command("prune")
@click.option("-f", "--force", is_flag=True)
def prune(force: bool) -> None:
    """Remove volumes no container uses."""
    for n in get_engine().volumes.prune():
        click.echo(n)

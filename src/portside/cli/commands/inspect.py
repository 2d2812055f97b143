"""`portside inspect` / `image inspect`: docker-like JSON for images."""

from __future__ import annotations

import json

import click

from portside.cli.commands.image import docker_inspect, open_store
from portside.errors import InvalidArgument, NotFound


def _inspect(names: tuple[str, ...], fmt: str | None, kind: str = "image") -> None:
    store = open_store()
    out = []
    missing = []
    for name in names:
        if kind in ("container", "all"):
            found = _container(name)
            if found is not None:
                out.append(found)
                continue
        rec = store.lookup(name) if kind != "container" else None
        if rec is None:
            missing.append(name)
            continue
        out.append(docker_inspect(store, rec))
    if fmt:
        for doc in out:
            click.echo(_render(fmt, doc))
    else:
        click.echo(json.dumps(out, indent=4))
    if missing:
        what = {"image": "image", "container": "container"}.get(kind, "object")
        raise NotFound(f"no such {what}: {', '.join(missing)}")


def _container(name: str) -> dict[str, object] | None:
    """The container's inspect document (containers first, as docker), or None."""
    from portside.cli.commands.create import get_engine
    from portside.engine.inspect import docker_inspect as container_inspect

    engine = get_engine()
    try:
        doc = engine.record(name)
    except (NotFound, InvalidArgument):
        return None
    return container_inspect(engine, doc)


def _render(fmt: str, doc: dict[str, object]) -> str:
    """A small subset of Go templates: `{{.Field}}`, `{{.A.B}}`, `{{json .X}}`."""
    import re

    def value(path: str) -> object:
        cur: object = doc
        for part in path.strip(".").split("."):
            if not part:
                continue
            cur = cur.get(part) if isinstance(cur, dict) else None
        return cur

    def sub(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(value(expr[5:].strip()))
        v = value(expr)
        return "" if v is None else (json.dumps(v) if isinstance(v, dict | list) else str(v))

    return re.sub(r"\{\{(.*?)\}\}", sub, fmt)


@click.command("inspect")
@click.option("--format", "-f", "fmt", default=None, help="Go-template subset, e.g. {{.Id}}.")
@click.option("--type", "kind", default="all", type=click.Choice(["image", "container", "all"]))
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...], fmt: str | None, kind: str) -> None:
    """Show low-level information on containers and images."""
    _inspect(names, fmt, kind)


@click.command("inspect")
@click.option("--format", "-f", "fmt", default=None, help="Go-template subset, e.g. {{.Id}}.")
@click.argument("names", nargs=-1, required=True)
def image_inspect(names: tuple[str, ...], fmt: str | None) -> None:
    """Show low-level information on images."""
    _inspect(names, fmt)

"""`portside ps`: containers, as docker lists them."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from portside.cli.commands.create import get_engine

if TYPE_CHECKING:
    from portside.engine.api import ContainerInfo


def _created(ts: float) -> str:
    secs = max(0, int(time.time() - ts))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if secs >= size:
            n = secs // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "Less than a second ago"


def _match(info: ContainerInfo, filters: list[tuple[str, str]]) -> bool:
    by: dict[str, list[str]] = {}
    for key, value in filters:
        by.setdefault(key, []).append(value)
    for key, values in by.items():
        if key == "name":
            ok = any(v in info.name for v in values)
        elif key == "id":
            ok = any(info.id.startswith(v) for v in values)
        elif key == "status":
            ok = info.state.status in values
        elif key == "label":
            ok = all(
                (k in info.labels and (not eq or info.labels[k] == v))
                for k, eq, v in (x.partition("=") for x in values)
            )
        elif key == "ancestor":
            ok = any(
                v in (info.image, info.image_id) or info.image_id.startswith(v) for v in values
            )
        elif key == "exited":
            ok = not info.state.running and str(info.state.exit_code) in values
        elif key == "health":
            ok = (info.state.health or {}).get("Status", "none") in values
        else:
            raise click.BadParameter(f"{key!r} is not a known filter", param_hint="--filter")
        if not ok:
            return False
    return True


def to_json(info: ContainerInfo) -> dict[str, Any]:
    from portside.engine.containers import status_line

    return {
        "Id": info.id,
        "Names": [info.name],
        "Image": info.image,
        "ImageID": info.image_id,
        "Command": info.command,
        "Created": int(info.created),
        "State": info.state.status,
        "Status": status_line(info.state),
        "ExitCode": info.state.exit_code,
        "Exited": not info.state.running and info.state.status != "created",
        "Pid": info.state.pid,
        "Labels": info.labels,
        "Ports": [],
        "StartedAt": info.state.started_at,
        "Health": (info.state.health or {}).get("Status", ""),
    }


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers, not just running.")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate IDs and commands.")
@click.option("--format", "fmt", default=None, help="json, or a Go-template subset.")
@click.option("-f", "--filter", "filters", multiple=True, help="name=, id=, status=, label=...")
@click.option("-l", "--latest", is_flag=True, help="Only the latest created container.")
@click.option("-n", "--last", type=int, default=None, help="The last N created containers.")
def ps(
    all_: bool,
    quiet: bool,
    no_trunc: bool,
    fmt: str | None,
    filters: tuple[str, ...],
    latest: bool,
    last: int | None,
) -> None:
    """List containers."""
    from portside.engine.containers import status_line

    parsed = []
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq:
            raise click.BadParameter(f"{f!r}: expected KEY=VALUE", param_hint="--filter")
        parsed.append((key, value))
    show_all = (
        all_ or latest or last is not None or any(k in ("status", "exited") for k, _ in parsed)
    )
    infos = [i for i in get_engine().list(all=show_all) if _match(i, parsed)]
    infos.sort(key=lambda i: i.created, reverse=True)
    if latest:
        infos = infos[:1]
    if last is not None:
        infos = infos[:last]
    if quiet:
        for i in infos:
            click.echo(i.id if no_trunc else i.short_id)
        return
    if fmt == "json":
        click.echo(json.dumps([to_json(i) for i in infos], indent=4))
        return
    if fmt:
        from portside.cli.commands.inspect import _render

        for i in infos:
            doc = to_json(i)
            doc["ID"] = i.id if no_trunc else i.short_id
            doc["Names"] = i.name
            doc["Command"] = " ".join(i.command)
            click.echo(_render(fmt.removeprefix("table ").replace("{{.", "{{."), doc))
        return
    rows = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")]
    for i in infos:
        cmd = " ".join(i.command)
        if not no_trunc and len(cmd) > 20:
            cmd = cmd[:19] + "…"
        rows.append(
            (
                i.id if no_trunc else i.short_id,
                i.image,
                f'"{cmd}"',
                _created(i.created),
                status_line(i.state),
                "",
                i.name,
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(v.ljust(widths[c]) for c, v in enumerate(r)).rstrip())

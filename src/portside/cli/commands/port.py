"""`portside port`: a container's published ports, as podman and docker print them."""

from __future__ import annotations

import click

from portside.cli.commands.create import get_engine


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
def port(container: str, private_port: str | None) -> None:
    """List port mappings of a container (or the host address of PRIVATE_PORT[/PROTO])."""
    from portside.errors import NotFound
    from portside.network.ports import from_runtime_config

    doc = get_engine().record(container)
    mappings = from_runtime_config((doc.get("net") or {}).get("ports") or [])
    if private_port is None:
        for m in mappings:
            click.echo(str(m))
        return
    num, _, proto = private_port.partition("/")
    found = [m for m in mappings if str(m.container_port) == num and m.protocol == (proto or "tcp")]
    if not found:
        raise NotFound(f"no public port {private_port!r} published for {doc['name']}")
    for m in found:
        ip = m.host_ip or "0.0.0.0"
        click.echo(f"[{ip}]:{m.host_port}" if ":" in ip else f"{ip}:{m.host_port}")

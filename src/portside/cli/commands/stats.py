"""`portside stats`: CPU, memory and PIDs of containers, from their cgroups."""

from __future__ import annotations

import json
import time

import click

from portside.cli.commands.create import get_engine


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n:.4g}TiB"


@click.command()
@click.option("--no-stream", is_flag=True, help="Print one sample and exit.")
@click.option("-a", "--all", "all_", is_flag=True, help="Include stopped containers.")
@click.option("--format", "fmt", default=None, help="json for machine-readable output.")
@click.argument("containers", nargs=-1)
def stats(containers: tuple[str, ...], no_stream: bool, all_: bool, fmt: str | None) -> None:
    """Display a live stream of containers' resource usage."""
    engine = get_engine()
    refs = list(containers) or [i.id for i in engine.list(all=all_)]
    while True:
        first = {ref: (engine.stats(ref), time.monotonic()) for ref in refs}
        time.sleep(0.5)
        rows = []
        for ref in refs:
            s = engine.stats(ref)
            prev, t0 = first[ref]
            dt = time.monotonic() - t0
            cpu = 100.0 * (s["cpu_ns"] - prev["cpu_ns"]) / (dt * 1e9) if dt > 0 else 0.0
            limit = s["mem_limit"] or 1
            rows.append(
                {
                    "ID": s["id"][:12],
                    "Name": s["name"],
                    "CPUPerc": f"{cpu:.2f}%",
                    "MemUsage": f"{_human(s['mem_usage'])} / {_human(s['mem_limit'])}",
                    "MemPerc": f"{100.0 * s['mem_usage'] / limit:.2f}%",
                    "PIDs": s["pids"],
                    "MemUsageBytes": s["mem_usage"],
                    "CPUNanos": s["cpu_ns"],
                }
            )
        if fmt == "json":
            click.echo(json.dumps(rows, indent=2))
        else:
            click.echo(
                f"{'ID':<14}{'NAME':<22}{'CPU %':<10}{'MEM USAGE / LIMIT':<26}{'MEM %':<10}PIDS"
            )
            for r in rows:
                click.echo(
                    f"{r['ID']:<14}{r['Name']:<22}{r['CPUPerc']:<10}{r['MemUsage']:<26}"
                    f"{r['MemPerc']:<10}{r['PIDs']}"
                )
        if no_stream:
            return

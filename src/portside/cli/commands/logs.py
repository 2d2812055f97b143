"""`portside logs`: what a container wrote, from the log its monitor keeps."""

from __future__ import annotations

import sys
import time

import click

from portside.cli.commands.create import get_engine


def parse_when(text: str | None, what: str) -> float | None:
    """docker's --since/--until: RFC 3339, unix seconds, or a duration before now (10m)."""
    if text is None:
        return None
    from portside.engine.containers import parse_time
    from portside.engine.specgen import parse_duration

    t = parse_time(text)
    if t is not None:
        return t
    try:
        return float(text) if "." in text or text.isdigit() else time.time() - parse_duration(text)
    except Exception:
        raise click.BadParameter(f"{text!r}: not a time or a duration", param_hint=what) from None


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow the output.")
@click.option("--since", default=None, help="From this time (RFC 3339, unix time, or 10m).")
@click.option("--until", default=None, help="Up to this time.")
@click.option("-n", "--tail", default="all", help="Lines from the end (or all).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.argument("container")
def logs(
    container: str, follow: bool, since: str | None, until: str | None, tail: str, timestamps: bool
) -> None:
    """Fetch the logs of a container."""
    from portside.engine.api import LogOptions

    if tail != "all" and not tail.lstrip("-").isdigit():
        raise click.BadParameter(f"{tail!r}: expected a number or all", param_hint="--tail")
    options = LogOptions(
        follow=follow,
        since=parse_when(since, "--since"),
        until=parse_when(until, "--until"),
        tail=None if tail == "all" or int(tail) < 0 else int(tail),
        timestamps=timestamps,
    )
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    try:
        for ts, stream, text in get_engine().logs(container, options):
            target = err if stream == "stderr" else out
            if timestamps:
                target.write(ts.encode() + b" ")
            target.write(text)
            if follow:
                target.flush()
    except BrokenPipeError:
        pass
    out.flush()

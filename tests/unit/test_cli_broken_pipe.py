"""An EPIPE inside a command: quiet only when it is about portside's own output.

click ends the process with status 1 and nothing on stderr for any EPIPE that escapes a
command. That is right for `portside images | head`, but an EPIPE from a pipe or socket of
the command's own made a failure nobody could see: once in CI, one of eight concurrent
`pull -q` exited 1 with an empty stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys

PORTSIDE = [sys.executable, "-m", "portside.cli"]

# a verb whose pipe to a helper process breaks: the helper left before reading
SCRIPT = """
import os

import click

from portside.cli import app


@click.command("pipe-to-gone-helper")
def pipe_to_gone_helper() -> None:
    r, w = os.pipe()
    os.close(r)
    os.write(w, b"data for a helper that already left")


app.cli.add_command(pipe_to_gone_helper)
app.run(["pipe-to-gone-helper"])
"""


def test_epipe_from_the_commands_own_pipe_says_so_on_stderr() -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "BrokenPipeError" in r.stderr  # the original error, with where it came from
    assert "pipe_to_gone_helper" in r.stderr
    assert "not on portside's output" in r.stderr.strip().splitlines()[-1]


def test_epipe_on_a_closed_stdout_stays_quiet() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left, as `| head` does
    try:
        r = subprocess.run(
            [*PORTSIDE, "version"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PORTSIDE_WARM="0"),
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert r.returncode == 1
    assert r.stderr == ""

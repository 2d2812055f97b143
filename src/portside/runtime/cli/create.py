"""`create [-b BUNDLE] [--console-socket PATH] [--pid-file F] [--no-pivot] ID`."""

from __future__ import annotations

from portside.runtime.cli import args as a
from portside.runtime.cli.common import root
from portside.runtime.cli.main import Globals

FLAGS: a.Spec = {
    "--bundle": ("bundle", a.STR),
    "-b": ("bundle", a.STR),
    "--console-socket": ("console_socket", a.STR),
    "--pid-file": ("pid_file", a.STR),
    "--no-pivot": ("no_pivot", a.BOOL),
    "--no-new-keyring": ("no_new_keyring", a.BOOL),
    "--preserve-fds": ("preserve_fds", a.INT),
}


def main(g: Globals, verb: str, argv: list[str]) -> int:
    from portside.runtime.process import launcher

    opts, rest = a.parse(argv, FLAGS)
    cid = a.one_id(rest, verb)
    launcher.create(
        root(g),
        cid,
        str(opts.get("bundle") or "."),
        console_socket=opts.get("console_socket"),  # type: ignore[arg-type]
        pid_file=opts.get("pid_file"),  # type: ignore[arg-type]
        no_pivot=bool(opts["no_pivot"]),
        no_new_keyring=bool(opts["no_new_keyring"]),
        preserve_fds=int(opts.get("preserve_fds") or 0),  # type: ignore[call-overload]
        systemd=g.systemd_cgroup,
    )
    return 0

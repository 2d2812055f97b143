"""`run [-b BUNDLE] [-d] ID`: create, start, and (without -d) wait and clean up."""

from __future__ import annotations

from portside.runtime.cli import args as a
from portside.runtime.cli.common import root
from portside.runtime.cli.create import FLAGS as CREATE_FLAGS
from portside.runtime.cli.main import Globals

FLAGS: a.Spec = {
    **CREATE_FLAGS,
    "--detach": ("detach", a.BOOL),
    "-d": ("detach", a.BOOL),
    "--keep": ("keep", a.BOOL),
}


def _wants_terminal(bundle: str) -> bool:
    from portside.linux import pathops
    from portside.runtime import fastjson

    try:
        with open(pathops.join(bundle, "config.json"), "rb") as f:
            return bool((fastjson.loads(f.read()).get("process") or {}).get("terminal"))
    except (OSError, ValueError, AttributeError):
        return False  # create reports the problem


def main(g: Globals, verb: str, argv: list[str]) -> int:
    from portside.runtime.process import launcher

    opts, rest = a.parse(argv, FLAGS)
    cid = a.one_id(rest, verb)
    detach = bool(opts["detach"])
    console_socket = opts.get("console_socket")
    proxy = None
    if not detach and console_socket is None and _wants_terminal(str(opts.get("bundle") or ".")):
        from portside.runtime.console import Proxy

        proxy = Proxy()
        console_socket = proxy.path
    try:
        c = launcher.create(
            root(g),
            cid,
            str(opts.get("bundle") or "."),
            console_socket=console_socket,  # type: ignore[arg-type]
            pid_file=opts.get("pid_file"),  # type: ignore[arg-type]
            no_pivot=bool(opts["no_pivot"]),
            no_new_keyring=bool(opts["no_new_keyring"]),
            preserve_fds=int(opts.get("preserve_fds") or 0),  # type: ignore[call-overload]
            systemd=g.systemd_cgroup,
            detached=detach,
            exec_fifo=False,  # started right below, in this process
            start_at_once=True,  # or even at once, when nothing comes in between
        )
    except BaseException:
        if proxy is not None:
            proxy.close()
        raise
    master = proxy.master() if proxy is not None else -1
    if not detach:
        launcher.forward_signals(c.pid)
    try:
        launcher.start(c)
    except BaseException:
        launcher.delete(c, force=True)
        raise
    if detach:
        return 0
    if master >= 0:
        from portside.runtime.console import Proxy

        Proxy.pump(master)
    code = launcher.wait_exit(c.pid)
    if not opts["keep"]:
        launcher.destroy(c)
    return code

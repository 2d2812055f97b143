"""`exec [-p process.json | ARGS...] [-t] [-d] [--env] [--cwd] [--user] [--cap] ID`."""

from __future__ import annotations

from portside.errors import InvalidArgument
from portside.runtime import fastjson
from portside.runtime.cli import args as a
from portside.runtime.cli.common import load
from portside.runtime.cli.main import Globals

FLAGS: a.Spec = {
    "--process": ("process", a.STR),
    "-p": ("process", a.STR),
    "--tty": ("tty", a.BOOL),
    "-t": ("tty", a.BOOL),
    "--detach": ("detach", a.BOOL),
    "-d": ("detach", a.BOOL),
    "--env": ("env", a.LIST),
    "-e": ("env", a.LIST),
    "--cwd": ("cwd", a.STR),
    "--user": ("user", a.STR),
    "-u": ("user", a.STR),
    "--additional-gids": ("gids", a.LIST),
    "-g": ("gids", a.LIST),
    "--cap": ("cap", a.LIST),
    "-c": ("cap", a.LIST),
    "--console-socket": ("console_socket", a.STR),
    "--pid-file": ("pid_file", a.STR),
    "--no-new-privs": ("nnp", a.BOOL),
    "--apparmor": ("apparmor", a.STR),
    "--process-label": ("label", a.STR),
    "--preserve-fds": ("preserve_fds", a.INT),
}


def main(g: Globals, verb: str, argv: list[str]) -> int:
    """runc's exit codes: the process's own status, 255 when exec itself fails."""
    from portside.errors import PortsideError
    from portside.runtime import log

    try:
        return _exec(g, verb, argv)
    except PortsideError as e:
        msg = str(e)
        log.error(msg if msg.startswith("exec failed") else f"exec failed: {msg}")
        return 255


def _exec(g: Globals, verb: str, argv: list[str]) -> int:
    from portside.runtime import cgroupctl

    cgroupctl.warm_up()  # first, so the kernel is ready when the process joins the cgroup
    from portside.runtime.process import launcher
    from portside.runtime.specconv import convert_process

    opts, rest = a.parse(argv, FLAGS, interspersed=False)
    if not rest:
        raise InvalidArgument('"exec" requires a minimum of 1 argument')
    c = load(g, rest[0])
    if opts.get("process"):
        with open(str(opts["process"]), "rb") as f:
            try:
                spec = fastjson.loads(f.read())
            except ValueError as e:
                raise InvalidArgument(f"invalid process JSON {opts['process']}: {e}") from None
    else:
        if len(rest) < 2:
            raise InvalidArgument("exec args cannot be empty")
        spec = fastjson.loads(fastjson.dumps(c.config.get("process") or {}))
        spec["args"] = rest[1:]
        spec["terminal"] = bool(opts["tty"])
        spec["env"] = list(spec.get("env") or []) + list(opts["env"])  # type: ignore[call-overload]
        if opts.get("cwd"):
            spec["cwd"] = opts["cwd"]
        user = spec.setdefault("user", {})
        if opts.get("user"):
            uid, _, gid = str(opts["user"]).partition(":")
            try:
                user["uid"] = int(uid)
                if gid:
                    user["gid"] = int(gid)
            except ValueError:
                raise InvalidArgument(f"parsing {opts['user']} as UID[:GID] failed") from None
        if opts["gids"]:
            user["additionalGids"] = [int(x) for x in opts["gids"]]  # type: ignore[attr-defined]
        if opts["cap"]:
            caps = spec.setdefault("capabilities", {})
            for kind in ("bounding", "effective", "permitted"):
                caps[kind] = list(caps.get(kind) or []) + list(opts["cap"])  # type: ignore[call-overload]
        if opts["nnp"]:
            spec["noNewPrivileges"] = True
        if opts.get("apparmor"):
            spec["apparmorProfile"] = opts["apparmor"]
        if opts.get("label"):
            spec["selinuxLabel"] = opts["label"]
    proc = convert_process(spec)
    console_socket = opts.get("console_socket")
    proxy = None
    if proc.terminal and console_socket is None and not opts["detach"]:
        from portside.runtime.console import Proxy

        proxy = Proxy()  # as runc: the foreground exec relays the pty itself
        console_socket = proxy.path
    try:
        return launcher.exec_process(
            c,
            proc,
            console_socket=console_socket,  # type: ignore[arg-type]
            pid_file=opts.get("pid_file"),  # type: ignore[arg-type]
            detach=bool(opts["detach"]),
            preserve_fds=int(opts.get("preserve_fds") or 0),  # type: ignore[call-overload]
            before_wait=(lambda: proxy.pump(proxy.master())) if proxy is not None else None,
        )
    finally:
        if proxy is not None:
            proxy.close()

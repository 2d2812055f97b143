"""Entry point of `portside-runtime`: runc's command line over the runtime library.

Kept to the stdlib modules Python has already loaded at start-up: each verb
lives in its own module, imported only when called.
"""

from __future__ import annotations

import posix
import sys

from portside.linux import pathops

VERBS = {
    "create": "create",
    "start": "start",
    "state": "state",
    "kill": "kill",
    "delete": "delete",
    "run": "run",
    "exec": "exec_",
    "list": "list_",
    "ps": "ps",
    "pause": "pause",
    "resume": "pause",
    "update": "update",
    "events": "events",
    "spec": "spec",
    "features": "features",
}

USAGE = """NAME:
   portside-runtime - an OCI runtime with runc's command line

USAGE:
   portside-runtime [global options] command [command options] [arguments...]

COMMANDS:
   create    create a container
   start     executes the user defined process in a created container
   state     output the state of a container
   kill      kill sends the specified signal to the container's init process
   delete    delete any resources held by the container
   run       create and run a container
   exec      execute new process inside the container
   list      lists containers started by portside-runtime with the given root
   ps        ps displays the processes running inside a container
   pause     pause suspends all processes inside the container
   resume    resumes all processes that have been previously paused
   update    update container resource constraints
   events    display container events such as OOM notifications and stats
   spec      create a new specification file
   features  show the enabled features

GLOBAL OPTIONS:
   --debug              enable debug logging
   --log value          set the log file to write logs to
   --log-format value   set the log format ('text' (default), or 'json')
   --root value         root directory for storage of container state
   --systemd-cgroup     use systemd to manage cgroups
   --version, -v        print the version
"""


class Globals:
    """The global flags every verb sees."""

    def __init__(self) -> None:
        self.root = ""
        self.log = ""
        self.log_format = "text"
        self.debug = False
        self.systemd_cgroup = False
        self.prog = "portside-runtime"


def _globals(argv: list[str]) -> tuple[Globals, list[str]]:
    from portside.runtime.cli.args import BOOL, STR, parse

    spec = {
        "--root": ("root", STR),
        "--log": ("log", STR),
        "--log-format": ("log_format", STR),
        "--debug": ("debug", BOOL),
        "--systemd-cgroup": ("systemd_cgroup", BOOL),
        "--rootless": ("rootless", STR),
        "--criu": ("criu", STR),
        "--version": ("version", BOOL),
        "-v": ("version", BOOL),
        "--help": ("help", BOOL),
        "-h": ("help", BOOL),
    }
    opts, rest = parse(argv, spec, interspersed=False)
    g = Globals()
    g.root = str(opts.get("root") or "")
    g.log = str(opts.get("log") or "")
    g.log_format = str(opts.get("log_format") or "text")
    g.debug = bool(opts["debug"])
    g.systemd_cgroup = bool(opts["systemd_cgroup"])
    if opts["version"]:
        rest = ["--version"]
    elif opts["help"] and not rest:
        rest = ["--help"]
    return g, rest


def main(argv: list[str] | None = None) -> int:
    """The console entry point; as the program (no `argv`) it ends without finalizing.

    Tearing down the interpreter (every module, every object) took longer than a whole
    `run` of /bin/true spends in the kernel; the state is on disk and the output is
    flushed, so there is nothing left for it to do.

    With `argv` (a caller's process, e.g. a monitor's forked child) it returns the exit
    status instead. It then leaves behind what a runtime process would: the signal
    handlers of a foreground `run`/`exec` (forwarding to the container), the child
    subreaper flag where the init is a grandchild, the log settings; the collector's
    setting and the PID namespace for new children are restored.
    """
    import gc

    # a short-lived process that makes few cycles: the collector's passes during the
    # imports cost more than the garbage they would find (a caller's setting is kept)
    collecting = gc.isenabled()
    gc.disable()
    try:
        code = _main(argv)
    finally:
        if collecting and argv is not None:
            gc.enable()
    if argv is None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            return code  # a closed or broken stream: let the interpreter report it
        posix._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from portside.errors import PortsideError
    from portside.runtime import log

    verb = ""
    prog = pathops.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "portside-runtime"
    try:
        g, rest = _globals(args)
        g.prog = prog
        log.configure(g.log, g.log_format, g.debug)
        if g.log_format not in ("text", "json"):
            raise PortsideError(f"invalid log-format: {g.log_format}")
        if not rest or rest[0] in ("--help", "help"):
            sys.stdout.write(USAGE)
            return 0
        if rest[0] == "--version":
            from portside import __version__

            print(f"{prog} version {__version__}\nspec: 1.3.0")
            return 0
        verb = rest[0]
        module = VERBS.get(verb)
        if module is None:
            log.error(f"No help topic for '{verb}'")
            return 3  # what runc (urfave/cli) exits with for an unknown command
        name = f"portside.runtime.cli.{module}"
        __import__(name)  # importlib would also load `warnings`
        mod = sys.modules[name]
        code: int = mod.main(g, verb, rest[1:])
        return code
    except PortsideError as e:
        msg = str(e)
        if verb in ("create", "run"):
            msg = f"{prog} {verb} failed: {msg}"
        log.error(msg)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        # an unexpected failure still gets runc's one-line shape (--debug adds the trace)
        if isinstance(e, OSError) and e.strerror:
            where = f"{e.filename}: " if e.filename else ""
            msg = f"{where}{e.strerror.lower()}"
        else:
            msg = f"{type(e).__name__}: {e}"
        if verb in ("create", "run"):
            msg = f"{prog} {verb} failed: {msg}"
        if log.is_debug():
            import traceback

            traceback.print_exc()
        log.error(msg)
        return 1
    finally:
        dump = pathops.getenv("PORTSIDE_RUNTIME_DUMP_MODULES")
        if dump:
            with open(dump, "w") as f:
                f.write("\n".join(sorted(sys.modules)))

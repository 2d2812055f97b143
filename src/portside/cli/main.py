"""Entry point of the `portside` command.

Subcommands are registered by import path and loaded only when invoked, so
`portside version` does not pay for the image or registry stacks. The click group
itself (app.py) loads only when this process parses the command line: `main` first
offers the call to the warm CLI (warm.py), a pre-imported copy that serves most calls
without importing click, the engine or the stores here.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# verb -> "module:attribute" of a click command; each component adds its own.
COMMANDS: dict[str, str] = {
    "version": "portside.cli.commands.version:version",
    "pull": "portside.cli.commands.pull:pull",
    "push": "portside.cli.commands.push:push",
    "images": "portside.cli.commands.images:images",
    "rmi": "portside.cli.commands.rmi:rmi",
    "tag": "portside.cli.commands.tag:tag",
    "inspect": "portside.cli.commands.inspect:inspect",
    "login": "portside.cli.commands.login:login",
    "logout": "portside.cli.commands.logout:logout",
    "image": "portside.cli.commands.image:image",
    "system": "portside.cli.commands.system:system",
    "search": "portside.cli.commands.search:search",
    "save": "portside.cli.commands.save:save",
    "load": "portside.cli.commands.load:load",
    "import": "portside.cli.commands.import_cmd:import_image",
    "network": "portside.cli.commands.network:network",
    "run": "portside.cli.commands.run:run",
    "create": "portside.cli.commands.create:create",
    "attach": "portside.cli.commands.attach:attach",
    "start": "portside.cli.commands.start:start",
    "stop": "portside.cli.commands.stop:stop",
    "kill": "portside.cli.commands.kill:kill",
    "restart": "portside.cli.commands.restart:restart",
    "rm": "portside.cli.commands.rm:rm",
    "ps": "portside.cli.commands.ps:ps",
    "logs": "portside.cli.commands.logs:logs",
    "exec": "portside.cli.commands.exec_cmd:exec_cmd",
    "wait": "portside.cli.commands.wait:wait",
    "top": "portside.cli.commands.top:top",
    "stats": "portside.cli.commands.stats:stats",
    "pause": "portside.cli.commands.pause:pause",
    "unpause": "portside.cli.commands.unpause:unpause",
    "cp": "portside.cli.commands.cp:cp",
    "rename": "portside.cli.commands.rename:rename",
    "container": "portside.cli.commands.container:container",
    "volume": "portside.cli.commands.volume:volume",
    "port": "portside.cli.commands.port:port",
    "diff": "portside.cli.commands.diff:diff",
    "commit": "portside.cli.commands.commit:commit",
    "build": "portside.cli.commands.build:build",
}


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI, turning any PortsideError into one line on stderr.

    Called as the `portside` command (no `argv`), the call goes to the warm CLI when
    one can stand in for this process; otherwise, or with an explicit `argv`, it runs here.
    """
    if argv is None:
        from portside.cli.warm import forward, leave

        code = forward(sys.argv[1:])
        if code is not None:
            leave(code)
    from portside.cli.app import run

    return run(argv)


def __getattr__(name: str) -> object:
    """`cli`, the click group, as before (it lives in app.py now)."""
    if name == "cli":
        from portside.cli.app import cli

        return cli
    raise AttributeError(f"module 'portside.cli.main' has no attribute {name!r}")

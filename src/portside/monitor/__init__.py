"""The per-container monitor: the container's parent, a small separate process.

It is started detached by the engine with one argument, the path of a JSON
config file (format in `portside.monitor.config`), and keeps the container's
stdio, log, attach socket, exit file, restart policy and healthcheck, so no
daemon is needed. `portside.monitor.client` is the engine's side of it.

Nothing is imported here: the monitor's resident size is paid per container.
"""

"""OCI hooks: run each with the container's state on stdin, within its timeout."""

from __future__ import annotations

from portside.errors import RuntimeFailure
from portside.runtime import fastjson

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any


def run_hooks(kind: str, hooks: list[dict[str, Any]], state: dict[str, Any]) -> None:
    """Run `hooks` in order; the first failure stops them and raises one line."""
    if not hooks:
        return
    import subprocess  # only containers with hooks pay for it

    payload = fastjson.dumps(state).encode()
    for i, hook in enumerate(hooks):
        args = hook.get("args") or [hook["path"]]
        env = hook.get("env")
        try:
            proc = subprocess.run(
                args,
                executable=hook["path"],
                input=payload,
                capture_output=True,
                env=dict(e.split("=", 1) for e in env if "=" in e) if env is not None else None,
                timeout=hook.get("timeout"),
                close_fds=True,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(
                f"error running {kind} hook #{i}: timeout after {hook.get('timeout')}s"
            ) from None
        except OSError as e:
            raise RuntimeFailure(
                f"error running {kind} hook #{i}: fork/exec {hook['path']}: "
                f"{(e.strerror or str(e)).lower()}"
            ) from None
        if proc.returncode != 0:
            status = (
                f"exit status {proc.returncode}"
                if proc.returncode > 0
                else f"signal: {-proc.returncode}"
            )
            raise RuntimeFailure(
                f"error running {kind} hook #{i}: {status}, "
                f"stdout: {proc.stdout.decode(errors='replace').strip()}, "
                f"stderr: {proc.stderr.decode(errors='replace').strip()}"
            )


def run_hooks_warn(kind: str, hooks: list[dict[str, Any]], state: dict[str, Any]) -> None:
    """poststart and poststop: a failure is a warning and the lifecycle goes on (the spec)."""
    from portside.runtime import log

    for hook in hooks:
        try:
            run_hooks(kind, [hook], state)
        except RuntimeFailure as e:
            log.warning(str(e))

"""Any runc-compatible runtime, through its command line only.

`portside-runtime` is the default; `--runtime runc|crun|PATH` or
`[engine] runtime = "..."` in portside.toml choose another. Each runtime keeps
its state under its own directory of the run root, so two runtimes never
read each other's state files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from portside.errors import ConfigError, NotFound, RuntimeFailure

DEFAULT_RUNTIME = "portside-runtime"


def engine_settings(config_path: str | None) -> dict[str, Any]:
    """The [engine] table of portside.toml (empty if the file does not exist)."""
    path = Path(config_path or os.environ.get("PORTSIDE_CONFIG") or "/etc/portside/portside.toml")
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}") from None
    import tomllib

    try:
        doc = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from None
    engine = doc.get("engine", {})
    if not isinstance(engine, dict):
        raise ConfigError(f"{path}: [engine] must be a table")
    return engine


def find_runtime(name: str) -> str:
    """An absolute path for a runtime name or path; portside-runtime beside this Python first."""
    if "/" in name:
        if not os.access(name, os.X_OK):
            raise NotFound(f"OCI runtime {name}: not found or not executable")
        return os.path.abspath(name)
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise NotFound(f'OCI runtime "{name}" not found in PATH')
    return found


class RuntimeClient:
    """Verbs of one runtime binary with its own --root."""

    def __init__(self, path: str, state_root: Path) -> None:
        self.path = path
        self.state_root = state_root

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def global_args(self) -> list[str]:
        return ["--root", str(self.state_root)]

    def argv(self, *args: str) -> list[str]:
        return [self.path, *self.global_args, *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(*args), capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeFailure(f"{self.name} {args[0]}: {last_line(proc.stderr)}")
        return proc

    def has_state(self, cid: str) -> bool:
        """Whether the runtime keeps state for `cid` (runc, crun and ours: ROOT/ID)."""
        return (self.state_root / cid).exists()

    def state(self, cid: str) -> dict[str, Any] | None:
        proc = self.run("state", cid, check=False)
        if proc.returncode != 0:
            return None
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def kill(self, cid: str, signal: int) -> None:
        self.run("kill", cid, str(signal))

    def delete(self, cid: str) -> None:
        self.run("delete", "--force", cid, check=False)

    def pause(self, cid: str) -> None:
        self.run("pause", cid)

    def resume(self, cid: str) -> None:
        self.run("resume", cid)

    def ps(self, cid: str) -> list[int]:
        proc = self.run("ps", "--format", "json", cid)
        try:
            pids = json.loads(proc.stdout or "[]")
        except ValueError:
            raise RuntimeFailure(f"{self.name} ps: unreadable output") from None
        return [int(p) for p in pids or []]


def last_line(text: str) -> str:
    """The runtime's one error line: the last non-empty one, runc's logrus prefix removed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "failed"
    line = lines[-1]
    if line.startswith("time=") and ' msg="' in line:
        line = line.split(' msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return line

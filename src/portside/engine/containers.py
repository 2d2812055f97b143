"""A container's life as the engine sees it: the record's status plus what its
monitor wrote (state.json, exit file, health.json), merged into one state.

The record says what the engine last did (created, started, removing); the
monitor's files say what actually happened since. Reading both, without a
daemon, is how a new CLI process knows a container exited or its monitor died.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from portside.engine.api import ContainerState
from portside.linux.procfs import pid_alive

# record statuses the engine writes
CREATED, STARTED, EXITED, REMOVING = "created", "running", "exited", "removing"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class Observed:
    """What the monitor's files say about one start of a container."""

    def __init__(self, run_dir: Path, cid: str) -> None:
        self.exit = read_json(run_dir / cid)
        self.state = read_json(run_dir / "state.json")
        self.health = read_json(run_dir / "health.json")
        try:
            self.monitor_pid = int((run_dir / "monitor.pid").read_text().strip() or 0)
        except (OSError, ValueError):
            self.monitor_pid = 0

    @property
    def monitor_alive(self) -> bool:
        return pid_alive(self.monitor_pid)


def derive_state(doc: dict[str, Any], seen: Observed | None) -> ContainerState:
    """The docker `State` from the record and the monitor's files."""
    status = doc.get("status", CREATED)
    last = doc.get("last_exit") or {}
    exit_code = int(last.get("exit_code", 0) or 0)
    oom = bool(last.get("oom_killed", False))
    started = str(doc.get("started_at") or "")
    finished = str(last.get("finished_at") or "")
    error = str(last.get("error") or "")
    restarts = int(last.get("restart_count", 0) or 0)
    pid = 0
    health = None
    if status == STARTED and seen is not None:
        st = seen.state or {}
        started = str(st.get("started_at") or started)
        restarts = int(st.get("restart_count", restarts) or 0)
        if seen.health is not None:
            health = _docker_health(seen.health)
        if seen.exit is not None:
            status = EXITED
            exit_code = int(seen.exit.get("exit_code", -1))
            oom = bool(seen.exit.get("oom_killed"))
            finished = str(seen.exit.get("finished_at") or "")
            started = str(seen.exit.get("started_at") or started)
            error = str(seen.exit.get("error") or "")
            restarts = int(seen.exit.get("restart_count", restarts) or 0)
        elif not seen.monitor_alive:
            status = EXITED
            exit_code = -1 if not last else exit_code
            error = "the container's monitor died"
        else:
            mon = st.get("status", "running")
            status = {"restarting": "restarting", "created": CREATED}.get(mon, "running")
            pid = int(st.get("pid") or 0)
            if doc.get("paused") and status == "running":
                status = "paused"
    elif status == STARTED:
        status = EXITED
    elif status == REMOVING:
        status = "removing"
    return ContainerState(
        status=status,
        running=status in ("running", "paused", "restarting"),
        paused=status == "paused",
        restarting=status == "restarting",
        oom_killed=oom,
        dead=False,
        pid=pid,
        exit_code=exit_code,
        error=error,
        started_at=started,
        finished_at=finished,
        restart_count=restarts,
        health=health,
    )


def _docker_health(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "Status": doc.get("status", "starting"),
        "FailingStreak": doc.get("failing_streak", 0),
        "Log": doc.get("log", []),
    }


def status_line(state: ContainerState, now_iso_parser: Any = None) -> str:
    """`ps`'s STATUS column: Up 3 seconds (healthy), Exited (3) 2 seconds ago, Created."""
    if state.status == "created":
        return "Created"
    if state.status == "removing":
        return "Removal In Progress"
    if state.status == "restarting":
        return f"Restarting ({state.exit_code})"
    if state.running:
        text = "Up " + _ago(state.started_at, suffix=False)
        if state.paused:
            text += " (Paused)"
        if state.health:
            text += f" ({state.health['Status']})"
        return text
    return f"Exited ({state.exit_code}) {_ago(state.finished_at)}".rstrip()


def parse_time(text: str) -> float | None:
    """RFC 3339 (with nanoseconds) -> unix seconds."""
    if not text:
        return None
    from datetime import datetime

    t = text.strip().replace("Z", "+00:00")
    if "." in t:
        head, _, rest = t.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        t = f"{head}.{digits[:6]}{tz}"
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        return None


def _ago(text: str, suffix: bool = True) -> str:
    import time

    ts = parse_time(text)
    if ts is None:
        return ""
    secs = max(0.0, time.time() - ts)
    if secs < 1:
        human = "Less than a second"
    elif secs < 60:
        human = f"{int(secs)} second{'s' if int(secs) != 1 else ''}"
    elif secs < 3600:
        m = int(secs // 60)
        human = f"{m} minute{'s' if m != 1 else ''}"
    elif secs < 86400:
        h = int(secs // 3600)
        human = f"{h} hour{'s' if h != 1 else ''}"
    else:
        d = int(secs // 86400)
        human = f"{d} day{'s' if d != 1 else ''}"
    return f"{human} ago" if suffix else human


def is_mounted(path: str) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return False

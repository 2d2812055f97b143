"""Healthcheck bookkeeping with docker's rules, kept apart from the process plumbing."""

from __future__ import annotations

from portside.monitor.config import HealthConfig
from portside.monitor.files import rfc3339nano

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOG_KEEP = 5
OUTPUT_KEEP = 4096

STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


class HealthState:
    """starting -> healthy/unhealthy; failures inside the start period do not count."""

    def __init__(self, cfg: HealthConfig) -> None:
        self.cfg = cfg
        self.status = STARTING
        self.failing_streak = 0
        self.log: list[dict[str, Any]] = []

    def record(
        self, exit_code: int, output: bytes, start_ns: int, end_ns: int, in_start_period: bool
    ) -> None:
        """One probe's result; exit_code -1 means it timed out or could not run."""
        self.log.append(
            {
                "start": rfc3339nano(start_ns),
                "end": rfc3339nano(end_ns),
                "exit_code": exit_code,
                "output": output[-OUTPUT_KEEP:].decode("utf-8", "replace"),
            }
        )
        del self.log[:-LOG_KEEP]
        if exit_code == 0:
            self.status = HEALTHY
            self.failing_streak = 0
            return
        if in_start_period and self.status == STARTING:
            return
        self.failing_streak += 1
        if self.failing_streak >= self.cfg.retries:
            self.status = UNHEALTHY

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "failing_streak": self.failing_streak, "log": self.log}

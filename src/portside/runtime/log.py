"""runc-shaped log lines: `time="..." level=error msg="..."` (or JSON with --log-format json).

Callers (the engine, conmon-like monitors) parse these, so the shape is runc's:
with --log FILE the line goes to the file and the bare message to stderr.
"""

from __future__ import annotations

import sys
import time

from portside.runtime import fastjson

_settings = {"file": "", "format": "text", "debug": False}


def configure(file: str = "", fmt: str = "text", debug: bool = False) -> None:
    _settings["file"] = file
    _settings["format"] = fmt
    _settings["debug"] = debug


def _quote(msg: str) -> str:
    """Go's %q for the ASCII printable case (json.dumps escapes the same way)."""
    return fastjson.dumps(msg, ensure_ascii=False)


def _line(level: str, msg: str) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _settings["format"] == "json":
        return fastjson.dumps({"level": level, "msg": msg, "time": now})
    return f'time="{now}" level={level} msg={_quote(msg)}'


def _emit(level: str, msg: str) -> bool:
    """Write the line; True if it went to a file rather than stderr."""
    line = _line(level, msg) + "\n"
    path = str(_settings["file"])
    if path and path != "/dev/stderr":
        try:
            with open(path, "a") as f:
                f.write(line)
            return True
        except OSError:
            pass
    sys.stderr.write(line)
    sys.stderr.flush()
    return False


def is_debug() -> bool:
    return bool(_settings["debug"])


def error(msg: str) -> None:
    if _emit("error", msg):
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def warning(msg: str) -> None:
    _emit("warning", msg)


def debug(msg: str) -> None:
    if _settings["debug"]:
        _emit("debug", msg)

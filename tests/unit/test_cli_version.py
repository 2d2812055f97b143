"""The CLI entry point: version output and the one-line error contract."""

from __future__ import annotations

import subprocess
import sys

from portside import __version__


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portside.cli", *args], capture_output=True, text=True, check=False
    )


def test_version_flag_prints_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"portside version {__version__}"


def test_version_verb_prints_version() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert f"portside version {__version__}" in result.stdout


def test_unknown_verb_is_one_line_and_125() -> None:
    result = run_cli("no-such-verb")
    assert result.returncode == 125
    assert "no-such-verb" in result.stderr

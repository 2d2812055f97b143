"""Which calls the warm CLI (cli/warm.py) may serve, and where it lives: pure checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from portside.cli import warm


@pytest.mark.parametrize(
    ("args", "verb"),
    [
        (["run", "--rm", "img"], "run"),
        (["--root", "/r", "--runroot", "/rr", "ps", "-a"], "ps"),
        (["--root=/r", "--storage-driver", "vfs", "rm", "x"], "rm"),
        (["--config", "/c.toml", "inspect", "x"], "inspect"),
        (["--help"], None),
        (["-v"], None),
        (["--root"], None),
        ([], None),
        (["--debug", "run"], None),  # an option it does not know: the CLI decides
    ],
)
def test_the_verb_after_the_plain_global_options(args: list[str], verb: str | None) -> None:
    assert warm.verb_of(args) == verb


def test_only_verbs_that_keep_to_their_own_stdio_are_served() -> None:
    for verb in ("run", "create", "start", "rm", "ps", "logs", "inspect", "stop", "wait"):
        assert verb in warm.WARM_VERBS
    for verb in ("exec", "attach", "pull", "push", "login", "build", "cp"):
        assert verb not in warm.WARM_VERBS


def test_where_it_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTSIDE_WARM", raising=False)
    monkeypatch.setenv("PORTSIDE_WARM_DIR", "/some/where")
    assert warm.warm_dir() == "/some/where"
    monkeypatch.setenv("PORTSIDE_WARM", "0")
    assert warm.warm_dir() is None
    monkeypatch.delenv("PORTSIDE_WARM")
    monkeypatch.delenv("PORTSIDE_WARM_DIR")
    monkeypatch.setattr(warm.os, "getuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    mine = warm.warm_dir()
    assert mine is not None and mine.startswith("/run/user/1000/portside-warm/")
    monkeypatch.setattr(warm.sys, "executable", "/another/venv/bin/python")
    assert warm.warm_dir() != mine  # another installation: its own
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert warm.warm_dir() is None  # no private place: every call runs itself


def test_settings_fixed_at_start_are_part_of_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LC_ALL", raising=False)
    before = warm.context_tag()
    monkeypatch.setenv("LC_ALL", "C")
    assert warm.context_tag() != before
    monkeypatch.delenv("LC_ALL")
    monkeypatch.setenv("PORTSIDE_ROOT", "/elsewhere")  # passed with each call instead
    assert warm.context_tag() == before
    assert warm.code_tag() == warm.code_tag()


def test_the_callers_side_loads_no_stdlib_package_beyond_os() -> None:
    """What a `portside` call imports before it is handed over is its own start-up cost:
    contextlib alone (collections, functools) was ~7 ms of it."""
    src = str(Path(warm.__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.append({src!r}); from portside.cli import warm\n"
        "warm.code_tag(); warm.context_tag(); warm.verb_of(['run'])\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    for heavy in ("contextlib", "collections", "functools", "typing", "click", "re"):
        assert heavy not in out, f"{heavy} loaded by the caller's side"
    with warm._suppress(KeyError):
        raise KeyError("x")
    with pytest.raises(ValueError), warm._suppress(KeyError):
        raise ValueError("y")

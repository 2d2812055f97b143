"""`run -it` through a real pty (pexpect): a shell, resize, detach with ctrl-p ctrl-q, attach."""

from __future__ import annotations

import pytest

from tests.integration.test_engine_support import (
    IMAGE,
    PORTSIDE,
    RUNTIMES,
    Env,
    engine_template,
    env,
    runtime_arg,
)

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_interactive_shell_resize_detach_and_attach(env: Env, runtime: str) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        PORTSIDE,
        ["run", "-it", "--runtime", runtime_arg(runtime), "--name", "shell", IMAGE, "sh"],
        dimensions=(24, 80),
        timeout=30,
    )
    try:
        child.expect(r"[#$] ")
        child.sendline("tty; echo $((6*7))")
        child.expect(r"/dev/pts/\d+")
        child.expect("42")
        child.setwinsize(33, 101)
        child.sendline("stty size")
        child.expect("33 101")
        child.send("\x10\x11")  # ctrl-p ctrl-q
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert env.inspect("shell")["State"]["Running"] is True
    ex = pexpect.spawn(PORTSIDE, ["exec", "-it", "shell", "sh"], dimensions=(20, 70), timeout=30)
    try:
        ex.expect(r"[#$] ")
        ex.sendline("tty; stty size; exit 3")
        ex.expect(r"/dev/pts/\d+")
        ex.expect("20 70")
        ex.expect(pexpect.EOF)
    finally:
        ex.close(force=True)
    assert ex.exitstatus == 3
    again = pexpect.spawn(PORTSIDE, ["attach", "shell"], dimensions=(40, 120), timeout=30)
    try:
        # the shell redraws its prompt on the resize the attach sends first: let it settle
        again.sendline("")
        again.expect(r"[#$] ")
        again.sendline("stty size; echo back-$((1+1))")
        again.expect("40 120")
        again.expect("back-2")
        again.sendline("exit 7")
        again.expect(pexpect.EOF)
    finally:
        again.close(force=True)
    assert again.exitstatus == 7
    state = env.inspect("shell")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 7)

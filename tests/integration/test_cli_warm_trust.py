"""The warm CLI's trust boundary from the server's side: a caller of another uid that
reaches the socket (here through permissions loosened on purpose) is never served and
cannot make the server leave; the socket itself is the owner's only."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli_warm import Warm, _alive, warm_in
from tests.integration.test_engine_support import Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]

# sends what a stale caller sends (a code tag the server did not load) and prints the reply
CALLER = """
import socket, sys
with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
    sock.connect(sys.argv[1])
    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, 0, 0))
    sock.sendmsg([b"1\\0not the code it loaded\\0"],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
    print(sock.recv(64).decode())
"""


@pytest.fixture
def warm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Warm]:
    """A warm CLI whose directory another uid can reach once it is loosened (the
    pytest temp root is 0700, so it lives in its own directory under /tmp)."""
    top = Path(tempfile.mkdtemp(prefix="portside-warm-trust-", dir="/tmp"))
    os.chmod(top, 0o755)
    try:
        with warm_in(top / "warm", monkeypatch) as w:
            yield w
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_another_uid_is_refused_and_cannot_stop_it(env: Env, warm: Warm) -> None:
    pid = warm.start(env)
    sock = warm.dir / "cli.sock"
    assert stat.S_IMODE(os.stat(warm.dir).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
    # loosen both on purpose: the server's own uid check is what is tested
    os.chmod(warm.dir, 0o755)
    os.chmod(sock, 0o777)
    proc = subprocess.run(
        [sys.executable, "-c", CALLER, str(sock)],
        user=65534,
        group=65534,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "L"  # "run it yourself", never "S" (leave) nor a worker
    assert _alive(pid) and warm.pid == pid and sock.exists()
    assert warm.workers() == []

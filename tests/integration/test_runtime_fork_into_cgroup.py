"""The init born in its cgroup2 directory (clone3 with CLONE_INTO_CGROUP), and the usual
fork when that cannot be done.

Each case runs in a fresh interpreter: the raw clone3 skips Python's fork bookkeeping,
which a single-threaded process that only reports and exits does not need (pytest's
process may have threads). Cgroups are named portside-test-* and removed afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_root

pytestmark = [pytest.mark.root, pytest.mark.cgroup]

SRC = str(Path(__file__).resolve().parents[2] / "src")

# the child reports the cgroup2 line of /proc/self/cgroup, then exits
CHILD = """
import json, os, sys
sys.path.insert(0, {src!r})
from portside.runtime.process import launcher
fd = os.open({target!r}, os.O_RDONLY | os.O_DIRECTORY)
r, w = os.pipe()
pid, born = launcher._fork(fd)
if pid == 0:
    with open("/proc/self/cgroup") as f:
        line = [x for x in f.read().splitlines() if x.startswith("0::")]
    os.write(w, (line[0] if line else "none").encode())
    os._exit(0)
os.close(w)
seen = os.read(r, 4096).decode()
_, status = os.waitpid(pid, 0)
print(json.dumps({{"born": born, "seen": seen, "status": status}}))
"""


def _unified() -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split()[:1] == ["cgroup2"]:
            return pre.split()[4]
    return ""


@pytest.fixture
def cgroup2_dir() -> Iterator[str]:
    need_root()
    root = _unified()
    if not root:
        pytest.skip("this machine has no cgroup2 hierarchy mounted")
    own = next(
        (x[3:] for x in Path("/proc/self/cgroup").read_text().splitlines() if x[:3] == "0::"),
        "/",
    )
    path = os.path.join(root + own.rstrip("/"), f"portside-test-{uuid.uuid4().hex[:10]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        os.rmdir(path)


def _run(target: str) -> dict[str, object]:
    code = CHILD.format(src=SRC, target=target)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_child_is_born_in_the_cgroup2_directory(cgroup2_dir: str) -> None:
    result = _run(cgroup2_dir)
    assert result["born"] is True
    assert result["status"] == 0
    name = os.path.basename(cgroup2_dir)
    assert str(result["seen"]).endswith(f"/{name}"), result


def test_a_directory_that_is_no_cgroup_falls_back_to_a_plain_fork(tmp_path: Path) -> None:
    """clone3 refuses it (EBADF): the usual fork, in the caller's cgroup, for the late
    move afterwards, as on a kernel without clone3."""
    need_root()
    result = _run(str(tmp_path))
    assert result["born"] is False
    assert result["status"] == 0
    assert "portside-test" not in str(result["seen"])


# the choice itself: born there only when this process has no other thread
CHOICE = """
import _thread, os, sys, time
sys.path.insert(0, {src!r})
from portside.runtime.process import launcher
from portside.runtime.process.options import Options

class Dir:  # the manager's one method the choice asks (a real manager needs real cgroups)
    def deferred_join_dir(self):
        return {target!r}

opts = Options()
opts.direct, opts.late_cgroup, opts.cgroup2_dir = True, True, {target!r}
alone = launcher._cgroup2_birthplace(opts, Dir())
lock = _thread.allocate_lock()
lock.acquire()
_thread.start_new_thread(lock.acquire, ())
time.sleep(0.05)
threaded = launcher._cgroup2_birthplace(opts, Dir())
print(alone >= 0, threaded)
"""


def test_a_second_thread_means_the_usual_fork(cgroup2_dir: str) -> None:
    code = CHOICE.format(src=SRC, target=cgroup2_dir)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.split() == [b"True", b"-1"]

"""Persistent network namespaces pinned under the run root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portside.errors import InvalidArgument
from portside.network import netns
from portside.network.netns import NetnsError
from tests.conftest import need_root

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(60)]


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(str(path))]


def test_create_pin_enter_remove(tmp_path: Path) -> None:
    need_root()
    run = tmp_path / "run"
    a = netns.create(run, "a")
    b = netns.create(run, "b")
    try:
        assert a == run / "netns" / "a" and netns.is_pinned(a)
        assert os.stat(a).st_ino != os.stat(b).st_ino  # two namespaces, not one
        assert os.stat(a).st_ino != os.stat("/proc/self/ns/net").st_ino
        out = netns.run_in(a, ["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert out.count(": lo:") == 1 and len(out.splitlines()) == 1 and ",UP" in out
        # the netns dir is a shared mount (unmounts reach later mount namespaces' copies)
        with open("/proc/self/mountinfo") as f:
            line = next(ln for ln in f if ln.split()[4] == str(run / "netns"))
        assert "shared:" in line
        assert netns.list_all(run) == [a, b]
        with pytest.raises(NetnsError, match="already exists"):
            netns.create(run, "a")
        with pytest.raises(InvalidArgument):
            netns.create(run, "../escape")
    finally:
        netns.remove(a)
        netns.remove(b)
    assert not a.exists() and not netns.is_pinned(a)
    netns.remove(a)  # idempotent
    netns.release_dir(run)
    assert _mounts_under(tmp_path) == []


def test_a_plain_file_left_by_a_crash_is_not_pinned_and_is_removed(tmp_path: Path) -> None:
    need_root()
    d = tmp_path / "run" / "netns"
    d.mkdir(parents=True)
    (d / "half").write_text("")
    assert not netns.is_pinned(d / "half")
    netns.remove(d / "half")
    assert not (d / "half").exists()
    assert _mounts_under(tmp_path) == []

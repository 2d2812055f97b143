"""Networking's partial-setup path: a failure after the namespace was pinned (here the
container's /etc files cannot be written: their directory is a regular file) leaves
no pin and no mount behind (`--network none`; the bridge path uses the same guard)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portside.engine.networking import EngineNetworking
from portside.network import netns

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(60)]


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == str(path) or p.startswith(f"{path}/")]


def test_a_failed_up_after_the_pin_leaves_no_namespace(tmp_path: Path) -> None:
    runroot = tmp_path / "netrun"
    runroot.mkdir()
    en = EngineNetworking(tmp_path / "root", runroot, {})
    cid = "c" * 64
    doc = {"id": cid, "name": "partial", "net": {"mode": "none", "netns": str(en.netns_path(cid))}}
    userdata = tmp_path / "userdata"
    userdata.write_text("a file where the directory should be\n")
    try:
        with pytest.raises(OSError):
            en.begin_up(doc, userdata, lambda ref: {}, "token", background=False)
        assert netns.list_all(runroot) == []
        assert not Path(doc["net"]["netns"]).exists()
        netns.release_dir(runroot)
        assert _mounts_under(tmp_path) == []
    finally:  # what the test itself would otherwise leave
        for p in netns.list_all(runroot):
            netns.remove(p)
        netns.release_dir(runroot)

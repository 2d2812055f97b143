"""`image mount`, `diff` and `commit` end to end: real overlay mounts, containers, registry."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_tool
from tests.fixtures.images import EXPECTED, check_tree
from tests.fixtures.registry import Registry
from tests.integration.test_engine_support import IMAGE, Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(240)]

MULTI = "localhost/ml:1"


def _load_layout(root: Path, layout: Path, name: str) -> None:
    from portside.images.copy import CopyOptions, copy
    from portside.images.store import ImageStore
    from portside.images.transports.local import LocalDestination
    from portside.images.transports.oci_layout import OciLayoutSource

    store = ImageStore(root)
    dest = LocalDestination(store, names=[name])
    try:
        copy(OciLayoutSource.from_dir(layout, "latest"), dest, CopyOptions())
    finally:
        dest.close()
        store.close()


def _mountinfo() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root: type, mode, owner, contents (or link target), xattrs."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                kind, data = "l", os.readlink(full).encode()
            elif stat.S_ISREG(st.st_mode):
                kind, data = "f", full.read_bytes()
            elif stat.S_ISDIR(st.st_mode):
                kind, data = "d", b""
            else:
                kind, data = "o", str(st.st_rdev).encode()
            out[str(full.relative_to(root))] = (
                kind,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                data,
                {
                    k: os.getxattr(full, k, follow_symlinks=False)
                    for k in os.listxattr(full, follow_symlinks=False)
                    if not k.startswith("trusted.overlay.")
                },
            )
    return out


def test_image_mount_gives_the_unpacked_tree(
    env: Env, fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    _load_layout(env.root, fixture_layouts["multilayer-gzip"], MULTI)
    path = Path(env.cli("image", "mount", MULTI).stdout.strip())
    assert path.is_dir() and str(path).startswith(str(env.root))
    assert str(path) in _mountinfo()
    assert check_tree(path, EXPECTED, cross_layer_hardlinks_share_inode=False) == []
    need_tool("umoci")
    bundle = tmp_path / "bundle"
    layout = f"{fixture_layouts['multilayer-gzip']}:latest"
    subprocess.run(["umoci", "unpack", "--image", layout, str(bundle)], check=True, timeout=120)
    umoci_tree = _tree(bundle / "rootfs")
    assert len(umoci_tree) > 20
    assert _tree(path) == umoci_tree
    # the same path for a second caller; read-only
    assert env.cli("image", "mount", MULTI).stdout.strip() == str(path)
    with pytest.raises(OSError):
        (path / "new-file").write_text("x")
    env.cli("image", "unmount", MULTI)
    assert env.mounts_under(env.root) == []
    bad = env.cli("image", "mount", "localhost/nosuch:1", check=False)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


def test_storage_driver_flag_picks_vfs(env: Env, fixture_layouts: dict[str, Path]) -> None:
    _load_layout(env.root, fixture_layouts["multilayer-gzip"], MULTI)
    vfs = ("--storage-driver", "vfs")
    path = Path(env.cli(*vfs, "image", "mount", MULTI).stdout.strip())
    assert path.is_relative_to(env.root / "storage" / "vfs")
    assert check_tree(path, EXPECTED) == []  # vfs copies: hardlinks keep sharing inodes
    env.cli(*vfs, "image", "unmount", MULTI)
    assert env.mounts_under(env.root) == []
    bad = env.cli("--storage-driver", "zfs", "image", "mount", MULTI, check=False)
    assert bad.returncode == 125
    assert "zfs" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


SCRIPT = (
    "echo new > /new; echo x >> /etc/passwd; rm /bin/true; "
    "mkdir -p /data/sub; echo hi > /data/sub/f; chmod 600 /data/sub/f"
)


def test_diff_and_commit_round_trip_through_a_registry(
    env: Env, registry: Registry, tmp_path: Path
) -> None:
    env.cli("run", "--name", "c", IMAGE, "sh", "-c", SCRIPT)
    lines = env.cli("diff", "c").stdout.splitlines()
    for want in ("A /new", "C /etc/passwd", "D /bin/true", "A /data", "A /data/sub/f"):
        assert want in lines, lines
    assert "C /etc/hostname" not in lines and "A /bin" not in lines
    assert all(line[:2] in ("A ", "C ", "D ") for line in lines), lines

    out = env.cli(
        "commit",
        "-m",
        "my change",
        "--author",
        "tester",
        "--change",
        "ENV FOO=bar",
        "--change",
        'CMD ["cat", "/new"]',
        "c",
        "localhost/committed:1",
    ).stdout.strip()
    assert out.startswith("sha256:") and len(out) == 71
    assert env.cli("run", "--rm", "localhost/committed:1").stdout == "new\n"
    check = env.cli(
        "run",
        "--rm",
        "localhost/committed:1",
        "sh",
        "-c",
        'test ! -e /bin/true && tail -n1 /etc/passwd && echo "$FOO" && cat /data/sub/f',
    )
    assert check.stdout == "x\nbar\nhi\n"
    doc = json.loads(env.cli("image", "inspect", "localhost/committed:1").stdout)[0]
    assert doc["Id"] == out
    assert doc["Author"] == "tester"
    assert doc["History"][-1]["comment"] == "my change"
    assert len(doc["RootFS"]["Layers"]) == 2
    assert "FOO=bar" in doc["Config"]["Env"]

    # a second commit of the unchanged container gives the same layer (reproducible diff)
    again = env.cli("commit", "c", "localhost/committed:2").stdout.strip()
    doc2 = json.loads(env.cli("image", "inspect", again).stdout)[0]
    assert doc2["Layers"][-1] == doc["Layers"][-1]

    # through the registry into a fresh store: the same tree as the container's
    remote = f"{registry.host}/storage-cli/committed:1"
    env.cli("push", "localhost/committed:1", remote)
    root2, run2 = tmp_path / "root2", tmp_path / "run2"
    fresh = ("--root", str(root2), "--runroot", str(run2))
    env.cli(*fresh, "pull", remote)
    pulled = Path(env.cli(*fresh, "image", "mount", remote).stdout.strip())
    _, ctr_root = env.engine().rootfs("c")
    want, got = _tree(Path(ctr_root)), _tree(pulled)
    assert sorted(want) == sorted(got)
    assert [k for k in want if want[k] != got[k]] == []
    assert got["new"][4] == b"new\n" and "bin/true" not in got

    env.cli(*fresh, "image", "unmount", remote)
    for name in ("c",):
        env.cli("rm", name)
    assert env.mounts_under(env.root) == []
    assert env.mounts_under(root2) == []


def test_commit_of_a_running_container_pauses_it_and_leaves_it_running(env: Env) -> None:
    env.cli("run", "-d", "--name", "live", IMAGE, "sh", "-c", "echo up > /running; sleep 300")
    env.wait_for("the file", lambda: "A /running" in env.cli("diff", "live").stdout)
    image_id = env.cli("commit", "-p", "live", "localhost/live:1").stdout.strip()
    state = env.inspect("live")["State"]
    assert (state["Running"], state["Paused"]) == (True, False)
    out = env.cli("run", "--rm", "localhost/live:1", "cat", "/running").stdout
    assert out == "up\n"
    assert env.cli("commit", "--no-pause", "live").stdout.strip() != ""
    # untagged: found by its ID
    assert env.cli("image", "inspect", image_id).returncode == 0
    env.cli("rm", "-f", "live")
    assert env.mounts_under(env.root) == []


def test_bad_input_is_one_line_and_stores_nothing(env: Env) -> None:
    env.cli("run", "--name", "c", IMAGE, "sh", "-c", "echo x > /x")
    before = env.cli("images", "-q").stdout
    for args in (
        ("commit", "nosuch"),
        ("commit", "--change", "FROM scratch", "c"),
        ("commit", "c", "Bad Ref!"),
        ("diff", "nosuch"),
        ("image", "unmount", "localhost/nosuch:1"),
    ):
        res = env.cli(*args, check=False)
        assert res.returncode != 0, args
        assert len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
    assert env.cli("images", "-q").stdout == before
    assert not list((env.root / "tmp").glob(".portside-commit-*"))

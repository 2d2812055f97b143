"""`--change`, one option shared by `commit` and `import`: same flag, same parser."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import click

from portside.cli.commands.commit import commit
from portside.cli.commands.import_cmd import import_image

PORTSIDE = [sys.executable, "-m", "portside.cli"]


def _change_param(command: click.Command) -> click.Option:
    found = [p for p in command.params if p.name == "changes"]
    assert len(found) == 1
    param = found[0]
    assert isinstance(param, click.Option)
    return param


def test_commit_and_import_take_the_same_change_option() -> None:
    ours = _change_param(commit)
    theirs = _change_param(import_image)
    assert ours.opts == theirs.opts == ["--change", "-c"]
    assert ours.multiple and theirs.multiple
    assert ours.metavar == theirs.metavar == "INSTRUCTION"
    assert ours.help == theirs.help and "STOPSIGNAL" in (ours.help or "")


def _rootfs_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tf:
        data = b"hello\n"
        info = tarfile.TarInfo("etc/greeting")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


def _portside(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PORTSIDE_WARM="0")
    return subprocess.run([*PORTSIDE, *args], capture_output=True, text=True, env=env, timeout=60)


def test_import_applies_repeated_changes_and_refuses_a_bad_one(tmp_path: Path) -> None:
    tar = _rootfs_tar(tmp_path / "rootfs.tar")
    r = _portside(
        "import", "-c", 'CMD ["sh"]', "--change", "ENV A=1", "-c", "WORKDIR /srv", str(tar), "x:1"
    )
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip().removeprefix("sha256:")
    r = _portside("image", "inspect", image_id)
    assert r.returncode == 0, r.stderr
    config = json.loads(r.stdout)[0]["Config"]
    assert config["Cmd"] == ["sh"]
    assert "A=1" in config["Env"]
    assert config["WorkingDir"] == "/srv"
    bad = _portside("import", "-c", "RUN echo hi", str(tar), "y:1")
    assert bad.returncode == 125
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "RUN" in lines[0]

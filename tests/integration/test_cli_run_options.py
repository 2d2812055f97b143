"""`run`'s options, each seen from inside a real container."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_engine_support import IMAGE, Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.cgroup, pytest.mark.timeout(150)]


def test_mounts_env_user_workdir_hostname_and_volumes(env: Env, tmp_path: Path) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "f").write_text("bound\n")
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROMFILE=yes\n")
    script = (
        "cat /b/f; touch /b/x 2>/dev/null || echo ro-bind; ls /etc/passwd; echo $FROMFILE $X; "
        "pwd; id -u; hostname; grep -c ' /scratch tmpfs' /proc/mounts"
    )
    out = env.cli(
        "run",
        "--rm",
        "-v",
        f"{bind}:/b:ro",
        "-v",
        "etcvol:/etc",
        "--tmpfs",
        "/scratch:size=1m",
        "--env-file",
        str(envfile),
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "hh",
        IMAGE,
        "sh",
        "-c",
        script,
    ).stdout.split("\n")
    assert out[:9] == ["bound", "ro-bind", "/etc/passwd", "yes 1", "/tmp", "65534", "hh", "1", ""]
    env.cli("run", "--rm", "-v", "etcvol:/etc", IMAGE, "sh", "-c", "echo kept > /etc/mine")
    assert env.cli("run", "--rm", "-v", "etcvol:/x", IMAGE, "cat", "/x/mine").stdout == "kept\n"
    # the named volume was filled from the image's /etc and keeps what was written
    vol = Path(
        env.cli("volume", "inspect", "etcvol").stdout.split('"Mountpoint": "')[1].split('"')[0]
    )
    assert (vol / "passwd").exists()
    assert (vol / "mine").read_text() == "kept\n"
    assert "etcvol" in env.cli("volume", "ls", "-q").stdout
    env.cli("volume", "rm", "etcvol")
    assert env.cli("volume", "ls", "-q").stdout == ""


def test_security_and_resource_flags(env: Env, tmp_path: Path) -> None:
    def run(*args: str) -> str:
        return env.cli("run", "--rm", *args).stdout

    assert run("--read-only", IMAGE, "sh", "-c", "touch /x 2>/dev/null || echo ro") == "ro\n"
    assert run("--init", IMAGE, "sh", "-c", "cat /proc/1/cmdline").startswith("/run/portside-init")
    caps = run(
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
        IMAGE,
        "sh",
        "-c",
        "grep -E 'CapEff|NoNewPrivs' /proc/self/status",
    )
    assert caps.split() == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1"]
    assert "Seccomp:\t0" in run(
        "--security-opt", "seccomp=unconfined", IMAGE, "cat", "/proc/self/status"
    )
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": '
        '[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}'
    )
    denied = run(f"--security-opt=seccomp={profile}", IMAGE, "sh", "-c", "mkdir /x || echo no")
    assert denied == "no\n"
    limits = run(
        "--ulimit",
        "nofile=100:200",
        "--pids-limit",
        "50",
        "-m",
        "64m",
        IMAGE,
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; cat /sys/fs/cgroup/pids/pids.max "
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    )
    assert limits.split() == ["100", "200", "50", str(64 << 20)]
    assert run("--network", "none", IMAGE, "ls", "/sys/class/net") == "lo\n"
    count = "ls /dev | wc -l; grep Seccomp: /proc/self/status"
    default_devs, default_seccomp = run(IMAGE, "sh", "-c", count).split("\n", 1)
    priv_devs, priv_seccomp = run("--privileged", IMAGE, "sh", "-c", count).split("\n", 1)
    assert int(priv_devs) > int(default_devs)  # the host's devices
    assert (default_seccomp.split(), priv_seccomp.split()) == (["Seccomp:", "2"], ["Seccomp:", "0"])
    assert run("--entrypoint", "echo", IMAGE, "a", "b") == "a b\n"
    bad = env.cli("run", "--rm", "--cap-add", "NOT_A_CAP", IMAGE, "true", check=False)
    assert bad.returncode == 125 and "NOT_A_CAP" in bad.stderr


def test_cp_rename_pause_and_prune(env: Env, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("into the container\n")
    env.cli("create", "--name", "box", IMAGE, "sleep", "60")
    env.cli("cp", str(src), "box:/tmp/")
    env.cli("start", "box")
    assert env.cli("exec", "box", "cat", "/tmp/in.txt").stdout == "into the container\n"
    env.cli("exec", "box", "sh", "-c", "echo made inside > /made")
    env.cli("cp", "box:/made", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "made inside\n"
    env.cli("rename", "box", "crate")
    env.cli("pause", "crate")
    assert env.inspect("crate")["State"]["Status"] == "paused"
    env.cli("unpause", "crate")
    assert env.inspect("crate")["State"]["Status"] == "running"
    env.cli("restart", "-t", "0", "crate")
    assert env.inspect("crate")["State"]["Running"] is True
    env.cli("create", "--name", "idle", IMAGE, "true")
    env.cli("kill", "crate")
    assert env.cli("wait", "crate").stdout.strip() == "137"
    pruned = env.cli("container", "prune", "-f").stdout.split()
    assert len(pruned) == 2
    assert env.cli("ps", "-aq").stdout == ""
    # a paused container: kill is refused, rm -f thaws and removes it
    env.cli("run", "-d", "--name", "frozen", IMAGE, "sleep", "60")
    env.cli("pause", "frozen")
    refused = env.cli("kill", "frozen", check=False)
    assert refused.returncode == 125 and "paused" in refused.stderr
    env.cli("rm", "-f", "frozen")
    assert env.cli("ps", "-aq").stdout == ""
    assert env.mounts_under(env.root) == []

"""Smaller verbs and flags: signal proxy, start -a, run -d --rm, ps filters, logs filters,
inspect of containers beside images."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.integration.test_engine_support import IMAGE, PORTSIDE, Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]


def test_a_signal_to_run_goes_to_the_container(env: Env) -> None:
    script = "trap 'echo got-int; exit 9' INT; echo ready; while true; do sleep 0.1; done"
    proc = subprocess.Popen(
        [PORTSIDE, "run", "--rm", IMAGE, "sh", "-c", script],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.read() == "got-int\n"
    assert proc.wait(timeout=60) == 9
    proc.stdout.close()


def test_start_attached_and_detached_autoremove(env: Env) -> None:
    env.cli("create", "--name", "later", IMAGE, "sh", "-c", "echo attached; exit 4")
    res = env.cli("start", "-a", "later", check=False)
    assert (res.returncode, res.stdout) == (4, "attached\n")
    # run -d --rm: the monitor's exit command removes the container once it exits
    env.cli("run", "-d", "--rm", "--name", "gone", IMAGE, "true")
    env.wait_for("the autoremoval", lambda: "gone" not in env.cli("ps", "-a").stdout)
    assert env.mounts_under(env.root) == []
    # run -d: the exit command unmounts the root filesystem of an exited container
    env.cli("run", "-d", "--name", "kept", IMAGE, "true")
    assert env.cli("wait", "kept").stdout == "0\n"
    env.wait_for("the unmount", lambda: env.mounts_under(env.root) == [])
    assert env.cli("start", "-a", "kept").returncode == 0  # mounted again to start


def test_ps_filters_and_formats_logs_filters_and_inspect(env: Env) -> None:
    env.cli(
        "run",
        "-d",
        "--name",
        "web",
        "-l",
        "tier=front",
        IMAGE,
        "sh",
        "-c",
        "echo one; echo two; echo three >&2; sleep 60",
    )
    env.cli("create", "--name", "cold", IMAGE, "true")
    assert env.cli("ps", "-q").stdout.count("\n") == 1
    assert env.cli("ps", "-aq").stdout.count("\n") == 2
    names = env.cli("ps", "-a", "--filter", "label=tier=front", "--format", "{{.Names}}").stdout
    assert names == "web\n"
    assert env.cli("ps", "-a", "--filter", "status=created", "--format", "{{.Names}}").stdout == (
        "cold\n"
    )
    doc = json.loads(env.cli("ps", "--format", "json").stdout)
    assert [d["Names"] for d in doc] == [["web"]] and doc[0]["State"] == "running"
    env.wait_for("three lines", lambda: env.cli("logs", "web").stdout.count("\n") == 2)
    logs = env.cli("logs", "web")
    assert (logs.stdout, logs.stderr) == ("one\ntwo\n", "three\n")
    tail = env.cli("logs", "--tail", "1", "web")
    assert tail.stdout + tail.stderr == "three\n"
    stamped = env.cli("logs", "-t", "--tail", "1", "web").stderr
    assert stamped.startswith("20") and stamped.endswith(" three\n")
    assert env.cli("logs", "--since", "2999-01-01T00:00:00Z", "web").stdout == ""
    # inspect finds containers first, then images; --type narrows it
    both = json.loads(env.cli("inspect", "web", IMAGE).stdout)
    assert both[0]["Name"] == "web" and both[0]["Config"]["Labels"] == {"tier": "front"}
    assert "RepoTags" in both[1] or "Id" in both[1]
    missing = env.cli("inspect", "--type", "container", IMAGE, check=False)
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1
    env.cli("rm", "-f", "web", "cold")


def test_rmi_refuses_an_image_a_container_uses(env: Env) -> None:
    env.cli("create", "--name", "holder", IMAGE, "true")
    res = env.cli("rmi", IMAGE, check=False)
    assert res.returncode == 125
    assert "holder" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert IMAGE.split(":")[0].split("/")[-1] in env.cli("images").stdout
    env.cli("rm", "holder")
    env.cli("rmi", IMAGE)
    assert IMAGE.split(":")[0].split("/")[-1] not in env.cli("images").stdout


def _df_rows(env: Env) -> dict[str, list[str]]:
    lines = env.cli("system", "df").stdout.splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    rows: dict[str, list[str]] = {}
    for line in lines[1:]:
        kind, rest = line[:16].strip(), line[16:].split()
        rows[kind] = rest
    return rows


def test_system_df_counts_containers_volumes_and_shared_layers_once(env: Env) -> None:
    before = _df_rows(env)
    env.cli("volume", "create", "data")
    env.cli("create", "--name", "one", "-v", "data:/data", IMAGE, "true")
    one = _df_rows(env)
    env.cli("create", "--name", "two", IMAGE, "true")
    two = _df_rows(env)
    assert two["Containers"][:2] == ["2", "0"]  # two containers, none running
    assert two["Images"][1] == "1"  # the image is in use
    assert two["Local Volumes"][:2] == ["1", "1"]  # one volume, used by one container
    # the image's layers are unpacked once, however many containers share them
    assert one["Unpacked layers"] == two["Unpacked layers"]
    assert before["Containers"][0] == "0"
    env.cli("rm", "one", "two")
    env.cli("volume", "rm", "data")
    assert _df_rows(env)["Containers"][0] == "0"

"""`portside run` end to end with real containers, on portside-runtime and runc."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.integration.test_engine_support import (
    IMAGE,
    PORTSIDE,
    RUNTIMES,
    Env,
    cgroup_dirs,
    engine_template,
    env,
    runtime_arg,
)

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(180)]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exit_codes_stdin_and_clean_removal(env: Env, runtime: str) -> None:
    rt = ("--runtime", runtime_arg(runtime))
    assert env.cli("run", "--rm", *rt, IMAGE, "sh", "-c", "exit 3", check=False).returncode == 3
    out = env.cli("run", "-i", "--rm", *rt, IMAGE, "cat", input="hi\n")
    assert out.stdout == "hi\n"
    greet = env.cli("run", "--rm", *rt, IMAGE, "sh", "-c", 'echo "$(hostname) $$"').stdout
    assert greet.split()[1] == "1"
    missing = env.cli("run", "--rm", *rt, IMAGE, "nosuchcommand", check=False)
    assert missing.returncode == 127, missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert env.cli("run", "--rm", *rt, IMAGE, "/etc", check=False).returncode == 126
    # --rm left nothing: no record, no mount, no container directory
    assert env.cli("ps", "-aq").stdout == ""
    assert env.mounts_under(env.root) == []
    assert list((env.root / "containers").iterdir()) == []


def test_unknown_image_is_one_line_and_125(env: Env) -> None:
    for image in ("localhost/nosuch:latest", "127.0.0.1:9/nosuch:1"):
        args = ["run", "--rm"] + (["--pull", "never"] if "localhost/" in image else [])
        res = env.cli(*args, image, "true", check=False)
        assert res.returncode == 125, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "nosuch" in res.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_lifecycle(env: Env, runtime: str) -> None:
    ticker = "trap '' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"
    cid = env.cli(
        "run", "-d", "--runtime", runtime_arg(runtime), "--name", "life", IMAGE, "sh", "-c", ticker
    ).stdout.strip()
    assert len(cid) == 64
    env.wait_for("two ticks", lambda: "tick 1" in env.cli("logs", "life").stdout)
    ex = env.cli("exec", "life", "sh", "-c", "echo from-exec; exit 4", check=False)
    assert (ex.returncode, ex.stdout) == (4, "from-exec\n")
    assert "sleep" in env.cli("top", "life").stdout or "sh -c" in env.cli("top", "life").stdout
    stats = env.cli("stats", "--no-stream", "life").stdout
    assert "life" in stats
    assert env.inspect("life")["State"]["Running"] is True
    # TERM is ignored: stop must fall back to SIGKILL after -t
    env.cli("stop", "-t", "1", "life")
    state = env.inspect("life")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)
    env.cli("start", "life")
    assert env.inspect("life")["State"]["Running"] is True
    env.wait_for(
        "a tick after restart", lambda: env.cli("logs", "life").stdout.count("tick 0") == 2
    )
    assert env.cli("rm", "life", check=False).returncode != 0  # running: refused without -f
    env.cli("rm", "-f", "life")
    assert env.cli("ps", "-aq").stdout == ""
    assert env.mounts_under(env.root) == []
    assert cgroup_dirs(cid) == []


def test_log_and_container_survive_killing_every_portside_process_but_the_monitor(
    env: Env,
) -> None:
    ticker = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done"
    follower = subprocess.Popen(
        [PORTSIDE, "run", "--name", "tick", IMAGE, "sh", "-c", ticker],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        env.wait_for("the container", lambda: "tick" in env.cli("ps").stdout)
        monitor_pid = int(
            (env.runroot / "c" / env.inspect("tick")["Id"][:12] / "monitor.pid").read_text()
        )
        follower.kill()  # the attached CLI
        follower.wait()
        for pid_file in env.runroot.glob("monitor-zygote-*.pid"):
            subprocess.run(["kill", "-9", pid_file.read_text().strip()], check=False)
    finally:
        if follower.stdout:
            follower.stdout.close()
        if follower.stderr:
            follower.stderr.close()
    assert subprocess.run(["kill", "-0", str(monitor_pid)], check=False).returncode == 0
    before = env.cli("logs", "tick").stdout.count("\n")
    env.wait_for("more log lines", lambda: env.cli("logs", "tick").stdout.count("\n") > before + 5)
    assert "Up " in env.cli("ps").stdout
    # logs -f from a new CLI follows until the container stops
    proc = subprocess.Popen(
        [PORTSIDE, "logs", "-f", "--tail", "1", "tick"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    second = proc.stdout.readline()
    assert int(second.split()[1]) == int(first.split()[1]) + 1
    env.cli("kill", "tick")
    assert proc.wait(timeout=60) == 0
    proc.stdout.close()


def test_memory_hog_is_oom_killed_in_inspect(env: Env) -> None:
    hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"
    res = env.cli("run", "--name", "hog", "-m", "20m", IMAGE, "sh", "-c", hog, check=False)
    assert res.returncode != 0
    state = env.inspect("hog")["State"]
    assert state["OOMKilled"] is True, state


def test_restart_on_failure_2_restarts_exactly_twice(env: Env) -> None:
    env.cli(
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        IMAGE,
        "sh",
        "-c",
        "echo run; exit 1",
    )
    assert env.cli("wait", "flaky").stdout.strip() == "1"
    doc = env.inspect("flaky")
    assert doc["RestartCount"] == 2
    assert env.cli("logs", "flaky").stdout.count("run\n") == 3


def test_failing_healthcheck_turns_unhealthy(env: Env) -> None:
    env.cli(
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "0.2s",
        "--health-retries",
        "2",
        IMAGE,
        "sleep",
        "60",
    )
    env.wait_for(
        "unhealthy",
        lambda: env.inspect("sick")["State"].get("Health", {}).get("Status") == "unhealthy",
    )
    assert "(unhealthy)" in env.cli("ps").stdout
    env.cli("rm", "-f", "sick")


def test_fifty_parallel_runs_keep_their_own_state(env: Env) -> None:
    n = 50
    procs = [
        subprocess.Popen(
            [PORTSIDE, "run", "-d", "--name", f"p{i}", IMAGE, "sh", "-c", f"echo me-{i}; sleep 60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    ids = {}
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=170)
        assert p.returncode == 0, err
        ids[f"p{i}"] = out.strip()
    assert len(set(ids.values())) == n
    listed = env.cli("ps", "--format", "json").stdout
    import json

    running = {c["Names"][0]: c["Id"] for c in json.loads(listed)}
    assert running == ids
    for i in range(n):
        env.wait_for(f"p{i}'s line", lambda i=i: env.cli("logs", f"p{i}").stdout == f"me-{i}\n")
    env.cli("rm", "-f", *ids)
    assert env.cli("ps", "-aq").stdout == ""
    assert env.mounts_under(env.root) == []


def test_rm_force_racing_start_leaves_nothing(env: Env) -> None:
    for round_ in range(3):
        cid = env.cli("create", IMAGE, "sleep", "60").stdout.strip()
        start = subprocess.Popen(
            [PORTSIDE, "start", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.05 * round_)  # vary the interleaving, not a timing assertion
        env.cli("rm", "-f", cid)
        start.wait(timeout=60)
        env.cli("rm", "-f", cid, check=False)  # start may have won the race: remove again
        assert env.cli("ps", "-aq").stdout == ""
        assert env.mounts_under(env.root) == []
        assert cgroup_dirs(cid) == []
        assert not (env.root / "containers" / cid).exists()

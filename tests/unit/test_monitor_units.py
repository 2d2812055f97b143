"""The monitor's pure parts: config, restart policy, health rules, log formats, JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.errors import InvalidArgument, InvalidDocument, RuntimeFailure
from portside.monitor import jsonlite
from portside.monitor.client import monitor_argv, spawn
from portside.monitor.config import NO_RESTART, HealthConfig, MonitorConfig, RestartPolicy
from portside.monitor.health import HealthState
from portside.monitor.logread import log_files, read_log
from portside.monitor.logs import CRIWriter, JSONFileWriter, open_writer
from portside.monitor.main import oom_counter_file, read_oom_kills

BASE: dict[str, Any] = {
    "version": 1,
    "id": "abc",
    "bundle": "/b",
    "runtime": "/usr/bin/runc",
    "state_dir": "/run/x",
}


def test_config_defaults_follow_state_dir() -> None:
    cfg = MonitorConfig(dict(BASE))
    assert cfg.exit_file == "/run/x/abc"
    assert cfg.attach_socket == "/run/x/attach"
    assert cfg.control_socket == "/run/x/ctl"
    assert cfg.log_path == "/run/x/ctr.log"
    assert (cfg.log_driver, cfg.log_max_size, cfg.log_max_file) == ("k8s-file", 0, 1)
    assert cfg.restart.name == "no" and cfg.healthcheck is None
    assert cfg.runtime_argv("start", "abc") == ["/usr/bin/runc", "start", "abc"]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "restart": {"policy": "on-failure", "max_retries": 3, "backoff": 0.5},
            "healthcheck": {"test": ["CMD-SHELL", "cat /ok"], "interval": 2, "retries": 4},
            "exit_command": ["/usr/bin/portside", "cleanup", "abc"],
            "log": {"driver": "json-file", "max_size": 100, "max_file": 3},
            "terminal": True,
            "sync_fd": 7,
        },
    ],
)
def test_config_state_round_trip_through_marshal(extra: dict[str, Any]) -> None:
    """The zygote hands its forker a validated config as plain data: nothing may change."""
    import marshal

    cfg = MonitorConfig({**BASE, **extra})
    back = MonitorConfig.from_state(marshal.loads(marshal.dumps(cfg.to_state())))
    for name in MonitorConfig.__slots__:
        value, got = getattr(cfg, name), getattr(back, name)
        if name in ("restart", "healthcheck") and value is not None:
            assert type(got) is type(value)
            assert [getattr(got, n) for n in value.__slots__] == [
                getattr(value, n) for n in value.__slots__
            ]
        else:
            assert got == value, name
    assert (back.restart is NO_RESTART) == (cfg.restart is NO_RESTART)
    assert back.exit_file == cfg.exit_file


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version 2"),
        ({"id": "../x"}, "id '../x'"),
        ({"bundle": "rel"}, "bundle 'rel'"),
        ({"runtime": None}, "runtime: missing"),
        ({"log": {"driver": "syslog"}}, "log.driver 'syslog'"),
        ({"log": {"max_size": -1}}, "log.max_size"),
        ({"terminal": "yes"}, "terminal"),
        ({"restart": "sometimes"}, "restart policy 'sometimes'"),
        ({"restart": "always:3"}, "needs on-failure"),
        ({"healthcheck": {"test": ["CMD"]}}, "healthcheck.test"),
        ({"attach_socket": "/" + "x" * 120}, "attach_socket: path longer"),
        ({"exit_command": ["portside", "cleanup"]}, "exit_command"),
        ({"defer_start": 1}, "defer_start"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    doc = {**BASE, **change}
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(InvalidArgument) as info:
        MonitorConfig(doc)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_restart_policies_follow_docker() -> None:
    no = RestartPolicy.parse("no")
    assert not no.should_restart(1, 0, False)
    on_failure = RestartPolicy.parse("on-failure:2")
    assert on_failure.max_retries == 2
    assert on_failure.should_restart(1, 0, False)
    assert on_failure.should_restart(1, 1, False)
    assert not on_failure.should_restart(1, 2, False)  # exactly two restarts
    assert not on_failure.should_restart(0, 0, False)
    unlimited = RestartPolicy.parse("on-failure")
    assert unlimited.should_restart(1, 1000, False)
    for name in ("always", "unless-stopped"):
        policy = RestartPolicy.parse(name)
        assert policy.should_restart(0, 50, False)
        assert not policy.should_restart(0, 0, True)  # a manual stop wins


def test_restart_backoff_doubles_to_a_ceiling() -> None:
    policy = RestartPolicy.parse({"policy": "always", "backoff": 0.1, "backoff_max": 1.0})
    assert [policy.delay(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_healthcheck_forms() -> None:
    shell = HealthConfig.parse({"test": ["CMD-SHELL", "curl -f x"]})
    assert shell is not None and shell.argv == ["/bin/sh", "-c", "curl -f x"]
    plain = HealthConfig.parse({"test": ["CMD", "true"], "interval": 2, "retries": 5})
    assert plain is not None and (plain.argv, plain.interval, plain.retries) == (["true"], 2.0, 5)
    assert HealthConfig.parse({"test": ["NONE"]}) is None


def test_health_state_counts_failures_after_start_period() -> None:
    cfg = HealthConfig(["true"], retries=2)
    state = HealthState(cfg)
    state.record(1, b"no", 0, 1, in_start_period=True)
    assert (state.status, state.failing_streak) == ("starting", 0)
    state.record(1, b"no", 0, 1, in_start_period=False)
    assert (state.status, state.failing_streak) == ("starting", 1)
    state.record(1, b"no", 0, 1, in_start_period=False)
    assert (state.status, state.failing_streak) == ("unhealthy", 2)
    state.record(0, b"ok", 0, 1, in_start_period=False)
    assert (state.status, state.failing_streak) == ("healthy", 0)
    for _ in range(10):
        state.record(1, b"x" * 10000, 0, 1, in_start_period=False)
    assert len(state.log) == 5 and len(state.log[-1]["output"]) == 4096


def test_cri_format_marks_partial_lines() -> None:
    w = CRIWriter.__new__(CRIWriter)
    entries = w.format("stdout", b"a\nb\ncd", "T")
    assert entries == [b"T stdout F a\n", b"T stdout F b\n", b"T stdout P cd\n"]
    assert w.format("stderr", b"\n", "T") == [b"T stderr F \n"]


def test_json_file_format_is_dockers() -> None:
    w = JSONFileWriter.__new__(JSONFileWriter)
    entries = w.format("stderr", 'x\n"é\xff'.encode("utf-8", "surrogateescape"), "T")
    docs = [json.loads(e) for e in entries]
    assert docs[0] == {"log": "x\n", "stream": "stderr", "time": "T"}
    assert docs[1]["log"].startswith('"é')  # partial: no newline; bad bytes replaced
    assert not docs[1]["log"].endswith("\n")


def test_rotation_keeps_max_file_and_splits_at_lines(tmp_path: Path) -> None:
    tmp_path = tmp_path / "logs"
    tmp_path.mkdir()
    path = tmp_path / "c.log"
    writer = open_writer("k8s-file", str(path), max_size=300, max_file=3)
    assert writer is not None
    for i in range(40):
        writer.write("stdout", b"".join(b"line-%d-%d\n" % (i, j) for j in range(3)))
    writer.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c.log", "c.log.1", "c.log.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 300
        assert all(
            re.fullmatch(r"\S+ stdout F line-\d+-\d", ln) for ln in p.read_text().splitlines()
        )
    assert path.read_text().splitlines()[-1].endswith("line-39-2")


def test_rotation_with_one_file_truncates(tmp_path: Path) -> None:
    tmp_path = tmp_path / "logs"
    tmp_path.mkdir()
    path = tmp_path / "c.log"
    writer = open_writer("json-file", str(path), max_size=200, max_file=1)
    assert writer is not None
    for i in range(20):
        writer.write("stdout", b"%d\n" % i)
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c.log"]
    assert json.loads(path.read_text().splitlines()[-1])["log"] == "19\n"


def test_reopen_follows_an_external_move(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    writer = open_writer("k8s-file", str(path))
    assert writer is not None
    writer.write("stdout", b"before\n")
    path.rename(tmp_path / "moved")
    writer.reopen()
    writer.write("stdout", b"after\n")
    writer.close()
    assert "after" in path.read_text() and "before" not in path.read_text()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_jsonlite_round_trips_like_json(value: Any) -> None:
    text = jsonlite.dumps(value)
    assert json.loads(text) == value
    assert jsonlite.loads(text) == value
    assert jsonlite.loads(json.dumps(value, indent=2)) == value


@pytest.mark.parametrize("bad", ["", "{", "{1}", "[1,]", "{} x", "NaN", b"\xff"])
def test_jsonlite_rejects_bad_input_in_one_line(bad: str | bytes) -> None:
    with pytest.raises(InvalidDocument) as info:
        jsonlite.loads(bad, "thing")
    assert str(info.value).startswith("thing: ")


def test_monitor_imports_stay_small() -> None:
    """What the monitor loads when started as the client starts it: no CLI or HTTP stacks."""
    argv = monitor_argv("/dev/null")
    boot = argv[4].replace("main()", "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([*argv[:4], boot], capture_output=True, text=True, check=True).stdout
    modules = set(out.split())
    assert "portside.monitor.main" in modules
    for heavy in ("click", "rich", "httpx", "json", "re", "subprocess", "threading", "typing"):
        assert heavy not in modules, heavy
    assert not [m for m in modules if m.startswith(("portside.engine", "portside.cli"))]
    assert sys.executable == argv[0]


def test_oom_counter_v1_oom_control(tmp_path: Path) -> None:
    f = tmp_path / "memory.oom_control"
    f.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert read_oom_kills(str(f)) == 2


def test_oom_counter_v2_memory_events_fake_file(tmp_path: Path) -> None:
    # this machine's cgroup2 has no memory controller: the v2 file is faked here
    f = tmp_path / "memory.events"
    f.write_text("low 0\nhigh 0\nmax 7\noom 3\noom_kill 1\noom_group_kill 0\n")
    assert read_oom_kills(str(f)) == 1
    assert read_oom_kills(str(tmp_path / "missing")) == 0
    assert read_oom_kills("") == 0


def test_oom_counter_file_of_this_process_is_the_v1_memory_cgroup() -> None:
    path = oom_counter_file(os.getpid())
    mine = Path("/proc/self/cgroup").read_text()
    if ":memory:" in mine:
        assert path.endswith("/memory.oom_control") and Path(path).exists()
    assert oom_counter_file(2**22 + 12345) == ""  # no such process


def test_spawn_names_a_missing_runtime() -> None:
    with pytest.raises(RuntimeFailure, match="'no-such-runtime': not found"):
        spawn({**BASE, "runtime": "no-such-runtime"})


@pytest.mark.parametrize("driver", ["k8s-file", "json-file"])
def test_read_log_joins_partials_across_rotation(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "logs" / "c.log"
    path.parent.mkdir()
    writer = open_writer(driver, str(path), max_size=400, max_file=4)
    assert writer is not None
    writer.write("stdout", b"one\ntw")
    writer.write("stderr", b"warning\n")
    writer.write("stdout", b"o\n")
    for i in range(5):
        writer.write("stdout", b"line %d\n" % i)
    writer.write("stdout", b"unfinished")
    writer.close()
    files = log_files(str(path), 4)
    assert files[-1] == str(path) and len(files) > 1  # it did rotate
    entries = list(read_log(str(path), driver, 4))
    texts = [(e.stream, e.text) for e in entries]
    assert texts[-1] == ("stdout", b"unfinished")
    assert ("stdout", b"two\n") in texts  # "tw" + "o\n", with stderr in between
    assert texts.index(("stderr", b"warning\n")) < texts.index(("stdout", b"two\n"))
    assert [t for s, t in texts if t.startswith(b"line")][-1] == b"line 4\n"
    assert all(e.time for e in entries)


def test_read_log_skips_garbage_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_bytes(b"not a log line\nT stdout F ok\n")
    assert [e.text for e in read_log(str(path))] == [b"ok\n"]
    with pytest.raises(InvalidArgument, match="'none'"):
        list(read_log(str(path), "none"))


def _sample(flag: bool, *, limit: int = 70000) -> tuple[Any, ...]:
    label = "sample-label"

    def inner(n: int) -> str:
        return label * n

    return (inner(2), b"bytes-constant", limit + 123456, ("a-b", -70000), flag)


def test_zygote_fresh_copies_equal_distinct_objects() -> None:
    """What the zygote gathers for its monitors must behave exactly as the original."""
    from portside.monitor.zygote import _fresh

    for value in ("sample-label", b"bytes-constant", 1 << 40, ("a-b", -70000), frozenset({"xy"})):
        copy = _fresh(value)
        assert copy == value and type(copy) is type(value)
        assert copy is not value
    for singleton in ("a", "", 5, None, True, (), b""):
        assert _fresh(singleton) is singleton
    code = _fresh(_sample.__code__)
    assert code is not _sample.__code__ and code.co_consts == _sample.__code__.co_consts
    copied = type(_sample)(code, _sample.__globals__, "_sample", _sample.__defaults__)
    copied.__kwdefaults__ = _sample.__kwdefaults__
    assert copied(True) == _sample(True)
    assert copied(False, limit=1) == _sample(False, limit=1)


def test_zygote_attribute_names_are_not_globals() -> None:
    """Only attribute lookups go through the type cache the zygote primes."""
    from portside.monitor.zygote import _attribute_names

    def user(obj: Any) -> Any:
        obj.field = len(os.path.join(obj.name, "x"))
        return obj.items()

    names = _attribute_names([user.__code__])
    assert names == {"field", "path", "join", "name", "items"}


def test_malloc_holes_reads_glibc() -> None:
    from portside.monitor import proc

    holes = proc.malloc_holes()
    assert isinstance(holes, int) and holes >= 0  # Debian 12: glibc 2.36 has mallinfo2


_COUNT_UP_CHECK = """
import os, sys
sys.path.insert(0, sys.argv[1])
from portside.monitor import zygote

def quickened(func):
    code = func.__code__
    return code._co_code_adaptive != code.co_code

zygote.proc.preload_prctl()  # as the zygote does first
fds = sorted(os.listdir("/proc/self/fd"))
zygote._count_up()
calls = zygote._once_run_calls()
for func, args in calls:
    assert not quickened(func), func.__qualname__
    try:
        func(*args)
    except (AttributeError, TypeError):
        pass
    assert quickened(func), func.__qualname__
assert sorted(os.listdir("/proc/self/fd")) == fds, "a warm-up call left an fd"
print(len(calls))
"""


def test_zygote_count_up_stops_on_the_eve_of_quickening() -> None:
    """The zygote starts each once-run function WARMUP_CALLS times: the monitor's own run is
    the one that quickens it (so it runs specialised), and none of those calls did anything."""
    import portside

    package_parent = str(Path(portside.__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _COUNT_UP_CHECK, package_parent],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 10


def test_zygote_count_up_calls_start_no_process() -> None:
    """A warm-up call that forked would leave a child; one that set a signal would show."""
    import signal

    from portside.monitor import zygote

    before = signal.getsignal(signal.SIGCHLD)
    pid = os.fork()
    if pid == 0:  # in a child: the calls must not touch this test process's state
        code = 0
        try:
            zygote._count_up()
            children = Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()
            if children or signal.getsignal(signal.SIGCHLD) != before:
                code = 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_slot_filler_sets_every_slot_in_order_and_checks_the_length() -> None:
    from portside.monitor.config import _slot_filler

    class Three:
        __slots__ = ("a", "b", "c")

    fill = _slot_filler(Three.__slots__)
    obj = fill(Three(), (1, "x", None))
    assert (obj.a, obj.b, obj.c) == (1, "x", None)
    with pytest.raises(ValueError):
        fill(Three(), (1, 2))
    with pytest.raises(ValueError):
        fill(Three(), (1, 2, 3, 4))
    cfg = MonitorConfig(BASE)
    with pytest.raises(ValueError):
        MonitorConfig.from_state(cfg.to_state()[:-1])


def _raises_on_line(flag: bool) -> int:
    if flag:
        raise KeyError("x")
    return 41 + 1


def test_zygote_padded_code_is_malloc_sized_and_runs_the_same() -> None:
    """Padding with unreachable NOPs moves a short function's code out of pymalloc's pools."""
    import opcode
    import traceback

    from portside.monitor.zygote import _MALLOC_OVER, _NOP, _padded

    assert bytes([opcode.opmap["NOP"], 0]) == _NOP

    code = _padded(_raises_on_line.__code__)
    assert sys.getsizeof(code) > _MALLOC_OVER >= sys.getsizeof(_raises_on_line.__code__)
    assert code.co_code.startswith(_raises_on_line.__code__.co_code)
    copied = type(_raises_on_line)(code, _raises_on_line.__globals__, "_raises_on_line")
    assert copied(False) == 42
    for _ in range(10):  # quickened and specialised as well
        assert copied(False) == 42
    with pytest.raises(KeyError) as info:
        copied(True)
    line = traceback.extract_tb(info.tb)[-1].lineno
    assert line == _raises_on_line.__code__.co_firstlineno + 2
    big = _padded(code)
    assert big is code  # already big enough: unchanged

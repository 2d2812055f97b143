"""The engine's records: unique names, ID prefixes, volumes, and the derived state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portside.engine.containers import derive_state, parse_time
from portside.engine.state import StateDB
from portside.engine.volumes import parse_mount, parse_tmpfs, parse_volume
from portside.errors import AlreadyExists, InvalidArgument, NotFound


def test_names_are_unique_even_when_racing(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "p.db")

    def add(i: int) -> bool:
        try:
            StateDB(tmp_path / "p.db").add(f"{i:064x}", "same", float(i), {"name": "same"})
        except AlreadyExists:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(add, range(16))) == 1
    assert len(db.all()) == 1


def test_resolve_by_name_id_and_unique_prefix(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "p.db")
    db.add("abc1" + "0" * 60, "one", 1.0, {"name": "one"})
    db.add("abc2" + "0" * 60, "two", 2.0, {"name": "two"})
    assert db.resolve("two") == "abc2" + "0" * 60
    assert db.resolve("abc1") == "abc1" + "0" * 60
    with pytest.raises(InvalidArgument, match="ambiguous"):
        db.resolve("abc")
    with pytest.raises(NotFound):
        db.resolve("zzz")
    db.rename("abc1" + "0" * 60, "uno")
    assert db.resolve("uno").startswith("abc1")
    with pytest.raises(AlreadyExists):
        db.rename("abc1" + "0" * 60, "two")


def test_volume_specs() -> None:
    v = parse_volume("/host:/ctr:ro")
    assert (v.kind, v.source, v.destination, v.readonly) == ("bind", "/host", "/ctr", True)
    v = parse_volume("data:/var/lib/x")
    assert (v.kind, v.source, v.anonymous) == ("volume", "data", False)
    assert parse_volume("/anon").anonymous
    m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m")
    assert (m.kind, m.options) == ("tmpfs", ["size=1m"])
    assert parse_tmpfs("/run:size=2m,mode=700").options == ["size=2m", "mode=700"]
    for bad in ("rel:path", "a:b:c:d", "/x:/y:bogus"):
        with pytest.raises(InvalidArgument):
            parse_volume(bad)


def test_a_started_record_without_its_monitor_files_reads_as_exited() -> None:
    state = derive_state({"status": "running"}, None)
    assert (state.status, state.running) == ("exited", False)
    created = derive_state({"status": "created"}, None)
    assert created.status == "created"


def test_rfc3339_nano_times() -> None:
    assert parse_time("1970-01-01T00:00:01.123456789Z") == pytest.approx(1.123456)
    assert parse_time("garbage") is None

"""Mount detection, cgroupsPath resolution (runc's rules) and resource parsing."""

from __future__ import annotations

import pytest

from portside.errors import CgroupError
from portside.runtime.cgroups import paths, resources

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

UNIFIED = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"

IN_CONTAINER = (
    "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro,relatime - cgroup cgroup rw,memory\n"
)


def test_parse_mountinfo_hybrid() -> None:
    m = paths.parse_mountinfo(HYBRID)
    assert m.mode == "hybrid"
    assert m.v1["cpu"] == m.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert m.v1["memory"] == "/sys/fs/cgroup/memory"
    assert m.v1["systemd"] == "/sys/fs/cgroup/systemd"
    assert m.unified == "/sys/fs/cgroup/unified"


def test_parse_mountinfo_unified_and_escapes() -> None:
    assert paths.parse_mountinfo(UNIFIED).mode == "v2"
    odd = "1 2 0:3 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n"
    assert paths.parse_mountinfo(odd).unified == "/mnt/my cg"
    assert paths.parse_mountinfo("").mode == "none"
    assert paths.parse_mountinfo(IN_CONTAINER).mode == "v1"


def test_parse_proc_cgroup() -> None:
    got = paths.parse_proc_cgroup("4:memory:/a/b\n3:cpu,cpuacct:/c\n1:name=systemd:/s\n0::/u\n")
    assert got == {"memory": "/a/b", "cpu": "/c", "cpuacct": "/c", "systemd": "/s", "": "/u"}


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("/a/b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../../etc", "/etc"),
        ("a/b", "a/b"),
        ("../../x", "x"),
        ("a/../../..", ""),
        ("", ""),
    ],
)
def test_clean_path_never_climbs_out(given: str, want: str) -> None:
    assert paths.clean_path(given) == want


def test_inner_path_defaults_to_the_id() -> None:
    assert paths.inner_path("ctr", None) == "ctr"
    assert paths.inner_path("ctr", "") == "ctr"
    assert paths.inner_path("ctr", "/machine/ctr") == "/machine/ctr"
    with pytest.raises(ValueError, match="hierarchy root"):
        paths.inner_path("ctr", "/")


def test_v1_paths_follow_runc() -> None:
    m = paths.parse_mountinfo(HYBRID)
    own = {"memory": "/user/1", "cpu": "/"}
    assert paths.v1_path(m, "memory", "/abs/c", own) == "/sys/fs/cgroup/memory/abs/c"
    assert paths.v1_path(m, "memory", "rel/c", own) == "/sys/fs/cgroup/memory/user/1/rel/c"
    assert paths.v1_path(m, "cpu", "rel", own) == "/sys/fs/cgroup/cpu,cpuacct/rel"


def test_v1_path_inside_a_container_strips_the_mount_root() -> None:
    m = paths.parse_mountinfo(IN_CONTAINER)
    own = {"memory": "/docker/abc"}
    assert paths.v1_path(m, "memory", "x", own) == "/sys/fs/cgroup/memory/x"


def test_v2_relative_path_uses_the_parent_of_our_cgroup() -> None:
    own = {"": "/user.slice/user-0.slice/session-1.scope"}
    got = paths.v2_path("/sys/fs/cgroup", "ctr", own)
    assert got == "/sys/fs/cgroup/user.slice/user-0.slice/ctr"
    assert paths.v2_path("/sys/fs/cgroup", "/m/ctr", own) == "/sys/fs/cgroup/m/ctr"
    assert paths.v2_path("/sys/fs/cgroup", "ctr", {"": "/"}) == "/sys/fs/cgroup/ctr"


def test_conversions_match_runc() -> None:
    assert resources.shares_to_weight(2) == 1
    assert resources.shares_to_weight(1024) == 39
    assert resources.shares_to_weight(262144) == 10000
    assert resources.blkio_weight_to_io_weight(10) == 1
    assert resources.blkio_weight_to_io_weight(1000) == 10000
    assert resources.swap_to_v2(-1, 100) == -1
    assert resources.swap_to_v2(None, 100) is None
    assert resources.swap_to_v2(300, 100) == 200


def test_resource_parsing_zero_means_unset_as_in_runc() -> None:
    c = resources.cpu({"shares": 0, "quota": 0, "period": 0, "cpus": ""})
    assert not c.needs_cpu_controller and c.cpus is None
    assert resources.pids({"limit": 0}) is None
    assert resources.pids({"limit": -1}) == -1
    m = resources.memory({"swap": 0, "swappiness": -1})
    assert m.swap is None and m.swappiness is None
    assert resources.memory({"swappiness": 18446744073709551615}).swappiness is None


@pytest.mark.parametrize(
    ("fn", "value", "message"),
    [
        (resources.memory, {"limit": "1g"}, r"memory\.limit: invalid value '1g'"),
        (resources.memory, {"limit": 10, "swap": 5}, "should be >= memory limit"),
        (resources.cpu, {"cpus": "1-"}, r"cpu\.cpus: invalid list"),
        (resources.cpu, {"mems": "a"}, r"cpu\.mems: invalid list"),
        (resources.cpu, {"idle": 2}, r"cpu\.idle: invalid value 2"),
        (resources.block_io, {"weight": 5000}, r"blockIO\.weight: invalid value 5000"),
        (
            resources.block_io,
            {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]},
            r"throttleReadBpsDevice\[0\]\.minor",
        ),
    ],
)
def test_bad_resources_name_the_field(fn: object, value: dict[str, object], message: str) -> None:
    with pytest.raises(CgroupError, match=message):
        fn(value)  # type: ignore[operator]


def test_parse_list_and_blkio_lines() -> None:
    assert resources.parse_list("0-2,5") == [0, 1, 2, 5]
    assert resources.parse_list("") == []
    assert resources.parse_blkio_entries("254:0 Read 4096\n254:0 Write 0\nTotal 4096\n") == [
        {"major": 254, "minor": 0, "op": "Read", "value": 4096},
        {"major": 254, "minor": 0, "op": "Write", "value": 0},
    ]


def test_hugepage_sizes_are_named_like_the_cgroup_files(tmp_path: object) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    for name in ("hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB", "junk"):
        (base / name).mkdir()
    assert resources.hugepage_sizes(str(base)) == ["1GB", "2MB", "64KB"]

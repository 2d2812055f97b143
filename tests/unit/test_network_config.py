"""Conflist validation and the network store (files only; no plugin runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portside.errors import AlreadyExists, ConfigError, InvalidArgument, NotFound
from portside.network.cni.config import (
    NetworkStore,
    build_conflist,
    default_network,
    load_conflist,
    parse_conflist,
)


def test_default_network_is_podmans_shape_with_our_names() -> None:
    conf = default_network()
    assert conf.name == "portside" and conf.bridge == "portside0"
    assert conf.subnets() == [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]
    assert [p["type"] for p in conf.plugins] == ["bridge", "portmap", "firewall"]
    bridge = conf.plugins[0]
    assert bridge["ipam"]["type"] == "host-local" and bridge["ipMasq"] is True
    assert conf.plugins[1]["capabilities"] == {"portMappings": True}
    assert not conf.dns_enabled and not conf.internal
    assert json.loads(conf.to_json())["cniVersion"] == "1.0.0"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}', "missing network 'name'"),
        ('{"name": "n", "plugins": [{"type": "bridge"}]}', "'cniVersion'"),
        ('{"name": "n", "cniVersion": "1.0.0", "plugins": []}', "non-empty list"),
        ('{"name": "n", "cniVersion": "1.0.0", "plugins": [{}]}', "plugin #1 has no valid"),
        ('{"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "../x"}]}', "plugin #1"),
        (
            '{"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "b", "ipam": {}}]}',
            "'ipam' needs a 'type'",
        ),
        ('{"name": "bad name", "cniVersion": "1.0.0", "plugins": [{"type": "b"}]}', "invalid"),
    ],
)
def test_a_broken_conflist_is_one_line_naming_the_file(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_conflist(text, "/etc/cni/net.d/x.conflist")
    msg = str(err.value)
    assert msg.startswith("/etc/cni/net.d/x.conflist: ") and fragment in msg and "\n" not in msg


def test_a_single_plugin_conf_is_wrapped_as_a_list() -> None:
    conf = parse_conflist('{"cniVersion": "0.4.0", "name": "one", "type": "loopback"}', "x")
    assert conf.plugins == [{"type": "loopback"}] and conf.cni_version == "0.4.0"


def test_build_conflist_checks_subnet_gateway_and_range() -> None:
    conf = build_conflist("n", "br9", "10.1.2.0/24", ip_range="10.1.2.128/25", internal=True)
    rng = conf.plugins[0]["ipam"]["ranges"][0][0]
    assert rng == {
        "subnet": "10.1.2.0/24",
        "gateway": "10.1.2.1",
        "rangeStart": "10.1.2.129",
        "rangeEnd": "10.1.2.254",
    }
    assert "routes" not in conf.plugins[0]["ipam"] and conf.internal
    assert conf.plugins[0]["ipMasq"] is False
    for kwargs, fragment in [
        ({"subnet": "nope"}, "invalid subnet"),
        ({"subnet": "10.0.0.0/31"}, "too small"),
        ({"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}, "not a host address"),
        ({"subnet": "10.0.0.0/24", "gateway": "10.0.0.0"}, "not a host address"),
        ({"subnet": "10.0.0.0/24", "ip_range": "10.0.1.0/25"}, "not inside"),
    ]:
        with pytest.raises(InvalidArgument, match=fragment):
            build_conflist("n", "br9", **kwargs)  # type: ignore[arg-type]


def test_store_create_list_get_remove(tmp_path: Path) -> None:
    store = NetworkStore(tmp_path / "networks")
    assert [c.name for c in store.list()] == ["portside"]  # written on first use
    assert (tmp_path / "networks" / "portside.conflist").exists()
    a = store.create("a", labels={"team": "x"})
    b = store.create("b")
    assert a.subnets()[0]["subnet"] == "10.89.0.0/24" and a.bridge == "portside1"
    assert b.subnets()[0]["subnet"] == "10.89.1.0/24" and b.bridge == "portside2"
    assert a.dns_enabled and a.labels == {"team": "x"}
    assert store.get("a").raw == a.raw
    assert [c.name for c in store.list()] == ["a", "b", "portside"]
    with pytest.raises(AlreadyExists):
        store.create("a")
    with pytest.raises(InvalidArgument, match=r"overlaps 10\.88\.0\.0/16 of network portside"):
        store.create("c", subnet="10.88.3.0/24")
    with pytest.raises(InvalidArgument, match="--gateway needs --subnet"):
        store.create("c", gateway="10.3.0.1")
    with pytest.raises(InvalidArgument, match="invalid network name"):
        store.create("no/slash")
    store.remove("a")
    with pytest.raises(NotFound, match="network a not found"):
        store.get("a")
    c = store.create("c")  # the freed subnet and bridge are reused
    assert c.subnets()[0]["subnet"] == "10.89.0.0/24" and c.bridge == "portside1"


def test_store_reads_extra_dirs_and_skips_broken_files_in_lists(tmp_path: Path) -> None:
    etc = tmp_path / "net.d"
    etc.mkdir()
    (etc / "10-ext.conflist").write_text(build_conflist("ext", "br-ext", "10.5.0.0/16").to_json())
    (etc / "99-broken.conflist").write_text("{")
    store = NetworkStore(tmp_path / "networks", (str(etc),))
    assert [c.name for c in store.list()] == ["ext", "portside"]
    assert store.get("ext").path == etc / "10-ext.conflist"
    with pytest.raises(ConfigError, match=r"99-broken\.conflist: not valid JSON"):
        store.get("99-broken")
    with pytest.raises(InvalidArgument, match="not by portside"):
        store.remove("ext")
    with pytest.raises(NotFound):
        load_conflist(tmp_path / "none.conflist")


def test_concurrent_creates_get_distinct_subnets_and_bridges(tmp_path: Path) -> None:
    import multiprocessing

    d = tmp_path / "networks"
    NetworkStore(d).ensure_default()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=NetworkStore(d).create, args=(f"n{i}",)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0] * 6
    confs = [c for c in NetworkStore(d).list() if c.name != "portside"]
    assert len({c.subnets()[0]["subnet"] for c in confs}) == 6
    assert len({c.bridge for c in confs}) == 6

"""The CNI protocol as we speak it, against small scripted test plugins (which record what
they were given) and Debian's real plugins for VERSION."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from portside.errors import CniPluginError
from portside.network.cni import result as cache
from portside.network.cni.config import parse_conflist
from portside.network.cni.invoke import Attachment, CniOptions, Invoker, upgrade_result

# A test plugin: logs "<type> <command>", its env and stdin, then answers as told by
# $DIR/<type>.<command> (a file holding "rc json") or passes prevResult on.
PLUGIN = r"""#!/bin/sh
d="$(dirname "$0")/log"; n="$(basename "$0")"
mkdir -p "$d"; i=$(ls "$d" | wc -l)
cat > "$d/$i.$n.$CNI_COMMAND.stdin"
env | grep '^CNI_' | sort > "$d/$i.$n.$CNI_COMMAND.env"
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}'; exit 0
fi
a="$(dirname "$0")/$n.$CNI_COMMAND"
if [ -f "$a" ]; then rc=$(head -1 "$a"); tail -n +2 "$a"; exit $rc; fi
if [ "$CNI_COMMAND" = ADD ]; then
  python3 "$(dirname "$0")/addresult.py" "$d/$i.$n.$CNI_COMMAND.stdin" "$n"
fi
"""


ADD_RESULT = """import json, sys
conf = json.load(open(sys.argv[1]))
res = conf.get("prevResult") or {"cniVersion": conf["cniVersion"], "interfaces": [], "ips": []}
res["interfaces"].append({"name": sys.argv[2]})
print(json.dumps(res))
"""


def make_plugins(d: Path, *names: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "addresult.py").write_text(ADD_RESULT)
    for n in names:
        p = d / n
        p.write_text(PLUGIN)
        p.chmod(0o755)
    return d


def calls(d: Path) -> list[tuple[str, str, dict[str, Any], dict[str, str]]]:
    out = []
    log = d / "log"
    for f in sorted(log.glob("*.stdin"), key=lambda p: int(p.name.split(".")[0])):
        _, name, cmd, _ = f.name.split(".")
        env = dict(ln.split("=", 1) for ln in f.with_suffix(".env").read_text().splitlines() if ln)
        out.append((name, cmd, json.loads(f.read_text() or "{}"), env))
    return out


def conflist(*types: str, version: str = "1.0.0", **extra: Any) -> Any:
    plugins = [{"type": t, "capabilities": {"portMappings": t == "pa"}, "own": t} for t in types]
    return parse_conflist(
        json.dumps({"cniVersion": version, "name": "net1", "plugins": plugins, **extra}), "t"
    )


@pytest.fixture
def inv(tmp_path: Path) -> tuple[Invoker, Path]:
    d = make_plugins(tmp_path / "bin", "pa", "pb", "pc")
    return Invoker(CniOptions(cache_dir=tmp_path / "cache", plugin_dirs=(str(d),))), d


def test_add_chains_prev_result_env_and_runtime_config_then_caches(
    inv: tuple[Invoker, Path], tmp_path: Path
) -> None:
    invoker, d = inv
    att = Attachment(
        "cid1", "/run/netns/x", "eth0", {"A": "1", "B": "2"}, {"portMappings": [{"hostPort": 1}]}
    )
    res = invoker.add(conflist("pa", "pb"), att)
    assert [i["name"] for i in res["interfaces"]] == ["pa", "pb"]
    log = [c for c in calls(d) if c[1] != "VERSION"]
    assert [(c[0], c[1]) for c in log] == [("pa", "ADD"), ("pb", "ADD")]
    first, second = log[0][2], log[1][2]
    assert first["name"] == "net1" and first["cniVersion"] == "1.0.0" and first["own"] == "pa"
    assert "capabilities" not in first and "prevResult" not in first
    assert first["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}
    assert "runtimeConfig" not in second  # pb did not declare the capability
    assert second["prevResult"]["interfaces"] == [{"name": "pa"}]
    env = log[0][3]
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "cid1"
    assert env["CNI_NETNS"] == "/run/netns/x" and env["CNI_IFNAME"] == "eth0"
    assert env["CNI_ARGS"] == "A=1;B=2" and env["CNI_PATH"] == str(d)
    entry = cache.load(tmp_path / "cache", "net1", "cid1", "eth0")
    assert entry is not None and entry.result == res and entry.netns == "/run/netns/x"
    assert entry.runtime_config == att.runtime_config


def test_del_runs_in_reverse_from_the_cache_even_without_the_config(
    inv: tuple[Invoker, Path], tmp_path: Path
) -> None:
    invoker, d = inv
    res = invoker.add(conflist("pa", "pb"), Attachment("c", "/x", runtime_config={"k": 1}))
    invoker.delete(None, Attachment("c", "", "eth0"), network="net1")
    dels = [c for c in calls(d) if c[1] == "DEL"]
    assert [c[0] for c in dels] == ["pb", "pa"]
    assert dels[0][2]["prevResult"] == res
    assert cache.load(tmp_path / "cache", "net1", "c", "eth0") is None
    invoker.delete(None, Attachment("c", ""), network="net1")  # idempotent: nothing cached
    assert len([c for c in calls(d) if c[1] == "DEL"]) == 2


def test_a_failing_plugin_is_one_line_and_what_ran_is_deleted(inv: tuple[Invoker, Path]) -> None:
    invoker, d = inv
    err_obj = {"cniVersion": "1.0.0", "code": 7, "msg": "bad config", "details": "line 1\nline 2"}
    (d / "pb.ADD").write_text("1\n" + json.dumps(err_obj) + "\n")
    with pytest.raises(CniPluginError) as err:
        invoker.add(conflist("pa", "pb", "pc"), Attachment("c", "/x"))
    assert str(err.value) == ("network net1: CNI plugin pb (ADD) failed: bad config: line 1 line 2")
    assert err.value.plugin == "pb" and err.value.code == 7
    ran = [(c[0], c[1]) for c in calls(d) if c[1] != "VERSION"]
    assert ran == [("pa", "ADD"), ("pb", "ADD"), ("pb", "DEL"), ("pa", "DEL")]


def test_stderr_is_the_message_when_stdout_has_no_error_object(inv: tuple[Invoker, Path]) -> None:
    invoker, d = inv
    (d / "pa").write_text(
        "#!/bin/sh\n[ $CNI_COMMAND = VERSION ] && "
        'echo \'{"supportedVersions":["1.0.0"]}\' && exit 0\n'
        "echo boom >&2\nexit 3\n"
    )
    with pytest.raises(CniPluginError, match=r"^network net1: CNI plugin pa \(ADD\) failed: boom$"):
        invoker.add(conflist("pa"), Attachment("c", "/x"))


def test_missing_plugin_fails_before_anything_runs(inv: tuple[Invoker, Path]) -> None:
    invoker, d = inv
    with pytest.raises(CniPluginError) as err:
        invoker.add(conflist("pa", "nothere"), Attachment("c", "/x"))
    assert str(err.value) == f"network net1: CNI plugin 'nothere' not found in {d}"
    assert not (d / "log").exists()


def test_version_negotiation_with_debians_plugins(tmp_path: Path) -> None:
    if not os.access("/usr/lib/cni/bridge", os.X_OK):
        pytest.skip("needs containernetworking-plugins (/usr/lib/cni), not installed here")
    invoker = Invoker(CniOptions(cache_dir=tmp_path))
    conf = conflist("bridge", "portmap", version="1.1.0")
    with pytest.raises(CniPluginError) as err:
        invoker.resolve(conf)
    assert "CNI plugin bridge does not support cniVersion 1.1.0" in str(err.value)
    assert "1.0.0" in str(err.value)
    conf = conflist("bridge", "portmap", version="1.1.0", cniVersions=["0.4.0", "1.0.0"])
    version, found = invoker.resolve(conf)
    assert version == "1.0.0" and [p for _, p in found] == [
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/portmap",
    ]
    # VERSION answers are kept by binary; a second invoker reads them from the cache file
    assert "/usr/lib/cni/bridge" in (tmp_path / "versions.json").read_text()
    # STATUS and GC exist from 1.1.0 only: with these plugins they are reported unsupported
    assert invoker.status(conflist("bridge", version="1.0.0")) is False
    assert invoker.gc(conflist("bridge", version="1.0.0"), [("c", "eth0")]) is False


def test_status_and_gc_when_the_plugins_speak_1_1(inv: tuple[Invoker, Path]) -> None:
    invoker, d = inv
    assert invoker.status(conflist("pa", "pb", version="1.1.0")) is True
    assert invoker.gc(conflist("pa", version="1.1.0"), [("c1", "eth0")]) is True
    log = [c for c in calls(d) if c[1] in ("STATUS", "GC")]
    assert [(c[0], c[1]) for c in log] == [("pa", "STATUS"), ("pb", "STATUS"), ("pa", "GC")]
    assert log[2][2]["cni.dev/valid-attachments"] == [{"containerID": "c1", "ifname": "eth0"}]
    assert "CNI_CONTAINERID" not in log[0][3]


def test_check_uses_the_cached_result_and_honours_disable_check(inv: tuple[Invoker, Path]) -> None:
    invoker, d = inv
    res = invoker.add(conflist("pa"), Attachment("c", "/x"))
    assert invoker.check(None, Attachment("c", ""), network="net1") is True
    chk = [c for c in calls(d) if c[1] == "CHECK"]
    assert chk[0][2]["prevResult"] == res and chk[0][3]["CNI_NETNS"] == "/x"
    invoker.add(conflist("pa", disableCheck=True), Attachment("c2", "/x"))
    assert invoker.check(None, Attachment("c2", ""), network="net1") is False


def test_old_results_are_read_in_the_new_shape() -> None:
    old = {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1"}}
    assert upgrade_result(old)["ips"] == [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}]


def test_portmap_without_ports_is_skipped_on_add_and_on_the_cached_del(tmp_path: Path) -> None:
    d = make_plugins(tmp_path / "bin", "pa", "portmap")
    invoker = Invoker(CniOptions(cache_dir=tmp_path / "cache", plugin_dirs=(str(d),)))
    conf = parse_conflist(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "net1",
                "plugins": [
                    {"type": "pa"},
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            }
        ),
        "t",
    )
    invoker.add(conf, Attachment("quiet", "/x"))
    invoker.delete(None, Attachment("quiet", ""), network="net1")
    ports = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    invoker.add(conf, Attachment("busy", "/x", runtime_config=ports))
    invoker.delete(None, Attachment("busy", ""), network="net1")
    ran = [(c[0], c[1], c[3]["CNI_CONTAINERID"]) for c in calls(d) if c[1] != "VERSION"]
    assert ran == [
        ("pa", "ADD", "quiet"),
        ("pa", "DEL", "quiet"),
        ("pa", "ADD", "busy"),
        ("portmap", "ADD", "busy"),
        ("portmap", "DEL", "busy"),
        ("pa", "DEL", "busy"),
    ]

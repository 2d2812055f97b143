"""The runtime-spec config.json and state models: round trips, edits, errors, import cost."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from portside.errors import InvalidDocument
from portside.oci.runtime_spec import (
    OCI_VERSION,
    Linux,
    Namespace,
    Process,
    Spec,
    State,
    default_spec,
)
from tests.unit.test_oci_schemas import RICH_SPEC


def test_unknown_fields_survive_everywhere() -> None:
    doc = copy.deepcopy(RICH_SPEC)
    doc["x-top"] = {"a": [1, 2]}
    doc["windows"] = {"layerFolders": ["C:\\x"]}
    doc["process"]["x-proc"] = True
    doc["process"]["user"]["x-user"] = "u"
    doc["linux"]["resources"]["memory"]["x-mem"] = None
    doc["linux"]["seccomp"]["syscalls"][1]["args"][0]["x-arg"] = 1
    doc["mounts"][0]["x-mount"] = {}
    spec = Spec.from_dict(doc)
    assert spec.to_dict() == doc
    assert json.dumps(spec.to_dict()) == json.dumps(doc)
    # Edits keep the unknown fields and the key order.
    assert spec.process is not None
    spec.process.args = ["true"]
    spec.hostname = None
    out = spec.to_dict()
    assert out["process"]["args"] == ["true"]
    assert "hostname" not in out
    assert out["x-top"] == {"a": [1, 2]}
    assert out["windows"] == doc["windows"]
    assert list(out["process"]) == list(doc["process"])


def test_typed_access() -> None:
    spec = Spec.from_dict(RICH_SPEC)
    assert spec.oci_version == "1.3.0"
    assert spec.process is not None and spec.linux is not None
    assert spec.process.user.additional_gids == [3, 4]
    assert spec.process.io_priority is not None
    assert spec.process.io_priority.class_ == "IOPRIO_CLASS_BE"
    assert spec.process.env_dict() == {"PATH": "/bin"}
    assert spec.linux.namespace("network") == Namespace(type="network", path="/var/run/netns/x")
    assert spec.linux.namespace("nope") is None
    assert spec.linux.resources is not None and spec.linux.resources.memory is not None
    assert spec.linux.resources.memory.swap == -1
    assert spec.linux.seccomp is not None and spec.linux.seccomp.syscalls is not None
    assert spec.linux.seccomp.syscalls[1].args is not None
    assert spec.linux.seccomp.syscalls[1].args[0].op == "SCMP_CMP_EQ"
    assert spec.hooks is not None and spec.hooks.create_runtime is not None
    assert spec.hooks.create_runtime[0].timeout == 5
    assert spec.mounts is not None and spec.mounts[1].uid_mappings is not None
    assert spec.mounts[1].uid_mappings[0].host_id == 1000


def test_absent_defaults_stay_absent() -> None:
    doc = {"ociVersion": "1.0.0", "process": {"cwd": "/", "user": {}}}
    spec = Spec.from_dict(doc)
    assert spec.process is not None
    assert spec.process.user.uid == 0
    assert spec.to_dict() == doc
    doc2 = {"ociVersion": "1.0.0", "process": {"cwd": "/"}}
    assert Spec.from_dict(doc2).to_dict() == doc2


def test_parse_bytes_and_to_json() -> None:
    raw = json.dumps(RICH_SPEC).encode()
    spec = Spec.parse(raw)
    assert json.loads(spec.to_json()) == RICH_SPEC
    assert json.loads(spec.to_bytes()) == RICH_SPEC
    assert spec.copy() == spec


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop("ociVersion"), "ociVersion"),
        (lambda d: d["process"].pop("cwd"), "process: missing required field 'cwd'"),
        (lambda d: d["process"].update(cwd="relative"), "absolute"),
        (lambda d: d["process"]["user"].update(uid=-1), r"process.user.uid"),
        (lambda d: d["process"].update(args="sh"), r"process.args: must be a list"),
        (lambda d: d["root"].pop("path"), "root: missing required field 'path'"),
        (lambda d: d["mounts"][1].pop("destination"), r"mounts\[1\]"),
        (lambda d: d["linux"]["namespaces"].append({"type": "pid"}), "listed twice"),
        (lambda d: d["linux"]["namespaces"].append({"type": "bogus"}), "unknown namespace"),
        (lambda d: d["linux"]["uidMappings"][0].pop("size"), "size"),
        (lambda d: d["linux"]["resources"]["memory"].update(limit=1.5), "integer"),
        (lambda d: d["linux"]["resources"]["memory"].update(limit=2**63), "int64"),
        (lambda d: d["linux"]["seccomp"].pop("defaultAction"), "defaultAction"),
        (lambda d: d["hooks"]["prestart"][0].update(timeout=0), "at least 1"),
        (lambda d: d.update(linux=[]), "linux: must be an object"),
    ],
)
def test_bad_specs(mutate: object, match: str) -> None:
    doc = copy.deepcopy(RICH_SPEC)
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(InvalidDocument, match=match) as info:
        Spec.parse(json.dumps(doc))
    assert str(info.value).startswith("config.json")


def test_bad_json() -> None:
    with pytest.raises(InvalidDocument, match=r"config\.json: not valid JSON"):
        Spec.parse(b"{nope")
    with pytest.raises(InvalidDocument, match="must be an object"):
        Spec.parse(b"[]")


def test_state() -> None:
    st = State(id="c", status="created", pid=1, bundle="/b")
    assert st.oci_version == OCI_VERSION
    d = json.loads(st.to_json())
    assert d == {
        "ociVersion": OCI_VERSION,
        "id": "c",
        "status": "created",
        "pid": 1,
        "bundle": "/b",
    }
    runc_like = {**d, "rootfs": "/b/rootfs", "created": "2024-01-01T00:00:00Z", "owner": ""}
    assert State.parse(json.dumps(runc_like)).to_dict() == runc_like
    # runc and crun print "paused", which the spec's enum lacks.
    assert State.parse(json.dumps({**d, "status": "paused"})).status == "paused"
    with pytest.raises(InvalidDocument, match="unknown status 'frozen'"):
        State.parse(json.dumps({**d, "status": "frozen"}))
    with pytest.raises(InvalidDocument, match="bundle"):
        State.parse(json.dumps({"ociVersion": "1", "id": "c", "status": "created"}))


def test_default_spec_shapes() -> None:
    d = default_spec()
    ns = [n["type"] for n in d["linux"]["namespaces"]]
    assert ns == ["pid", "network", "ipc", "uts", "mount"]
    assert d["ociVersion"] == OCI_VERSION
    r = default_spec(rootless=True, uid=1234, gid=5678)
    assert [n["type"] for n in r["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    assert r["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1234, "size": 1}]
    assert r["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 5678, "size": 1}]
    assert "resources" not in r["linux"]
    sys_mount = next(m for m in r["mounts"] if m["destination"] == "/sys")
    assert sys_mount["type"] == "none" and "rbind" in sys_mount["options"]
    # Each call gives a fresh document.
    d["mounts"].clear()
    assert default_spec()["mounts"]


def test_built_in_code() -> None:
    spec = Spec(process=Process(cwd="/", args=["sh"]), linux=Linux())
    assert spec.to_dict() == {
        "ociVersion": OCI_VERSION,
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
        "linux": {},
    }


def test_import_is_cheap() -> None:
    """The runtime imports this module on every container start: no heavy dependencies."""
    code = (
        "import sys, portside.oci.runtime_spec\n"
        "heavy = {'jsonschema', 'referencing', 'httpx', 'rich', 'click', 'ctypes',"
        " 'dataclasses', 'inspect', 'hashlib'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_constructor_and_replace() -> None:
    with pytest.raises(TypeError, match="missing keyword argument 'cwd'"):
        Process()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected arguments"):
        Process(cwd="/", bogus=1)  # type: ignore[call-arg]
    p = Process(cwd="/", args=["a"])
    q = p.replace(args=["b"])
    assert (p.args, q.args, q.cwd) == (["a"], ["b"], "/")
    assert p != q and p == p.replace()
    with pytest.raises(TypeError, match="no field"):
        p.replace(nope=1)
    assert "cwd='/'" in repr(p)
    with pytest.raises(TypeError):
        hash(p)

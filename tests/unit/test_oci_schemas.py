"""Every model's JSON validates against the official image-spec and runtime-spec schemas.

The validators here are also used by tests/interop/test_oci_roundtrip.py.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from portside.oci import mediatypes as mt
from portside.oci.config import ImageConfig
from portside.oci.descriptor import Descriptor
from portside.oci.digest import Digest
from portside.oci.index import Index
from portside.oci.manifest import Manifest, manifest_to_docker
from portside.oci.platform import Platform
from portside.oci.runtime_spec import Spec, State, default_spec
from tests.conftest import SPECS

IMAGE_SCHEMAS = SPECS / "image-spec" / "schema"
RUNTIME_SCHEMAS = SPECS / "runtime-spec" / "schema"
# image-spec files declare `id` URLs and resolve relative refs against them (and against
# the ids of sub-schemas); registering every file under each base covers all of them.
_IMAGE_BASES = (
    "https://opencontainers.org/schema/",
    "https://opencontainers.org/schema/image/",
    "https://opencontainers.org/schema/image/descriptor/",
)


@functools.cache
def _image_registry() -> Registry:
    resources = []
    for path in sorted(IMAGE_SCHEMAS.glob("*.json")):
        doc = json.loads(path.read_text())
        res = Resource(contents=doc, specification=DRAFT4)
        resources += [(base + path.name, res) for base in _IMAGE_BASES]
        if "id" in doc:
            resources.append((doc["id"], res))
    return Registry().with_resources(resources).crawl()


@functools.cache
def _runtime_registry() -> Registry:
    # runtime-spec files have no ids: each lives under its file:// URI.
    resources = [
        (path.resolve().as_uri(), Resource(json.loads(path.read_text()), DRAFT4))
        for path in sorted(RUNTIME_SCHEMAS.glob("*.json"))
    ]
    return Registry().with_resources(resources)


def image_validator(name: str) -> jsonschema.Draft4Validator:
    schema = json.loads((IMAGE_SCHEMAS / name).read_text())
    return jsonschema.Draft4Validator(schema, registry=_image_registry())


def runtime_validator(name: str) -> jsonschema.Draft4Validator:
    path = RUNTIME_SCHEMAS / name
    schema = json.loads(path.read_text())
    schema["id"] = path.resolve().as_uri()
    return jsonschema.Draft4Validator(schema, registry=_runtime_registry())


def errors(validator: jsonschema.Draft4Validator, doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def test_schema_files_are_there() -> None:
    assert (IMAGE_SCHEMAS / "image-manifest-schema.json").is_file(), SPECS
    assert (RUNTIME_SCHEMAS / "config-schema.json").is_file(), SPECS


# --- image-spec -----------------------------------------------------------------------

CONFIG_BLOB = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER = b"pretend this is a tar"


def _full_descriptor() -> Descriptor:
    return Descriptor.for_bytes(
        mt.OCI_MANIFEST,
        b"{}",
        embed=True,
        urls=["https://example.com/blob"],
        annotations={"org.opencontainers.image.ref.name": "v1"},
        platform=Platform(
            os="linux",
            architecture="arm64",
            variant="v8",
            os_version="6.1",
            os_features=["x"],
        ),
        artifact_type="application/vnd.example+json",
    )


def _manifest(media_type: str = mt.OCI_MANIFEST) -> Manifest:
    return Manifest(
        media_type=media_type,
        config=Descriptor.for_bytes(mt.OCI_CONFIG, CONFIG_BLOB),
        layers=[
            Descriptor.for_bytes(mt.OCI_LAYER_GZIP, LAYER),
            Descriptor.for_bytes(mt.OCI_LAYER_TAR, LAYER + b"2", annotations={"a": "b"}),
        ],
        subject=Descriptor.for_bytes(mt.OCI_MANIFEST, b"{}"),
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        artifact_type=None,
    )


def test_descriptor_validates() -> None:
    v = image_validator("content-descriptor.json")
    d = _full_descriptor().to_dict()
    assert errors(v, d) == []
    # The platform lives in the index schema; the bare descriptor allows it as extra.
    bad = copy.deepcopy(d)
    bad["digest"] = "not a digest"
    assert errors(v, bad)


def test_descriptor_from_dict_round_trips_schema_examples() -> None:
    d = _full_descriptor().to_dict()
    assert Descriptor.from_dict(d).to_dict() == d
    assert base64.b64decode(d["data"]) == b"{}"


def test_manifest_validates() -> None:
    v = image_validator("image-manifest-schema.json")
    m = _manifest()
    assert errors(v, json.loads(m.to_bytes())) == []
    parsed = Manifest.parse(m.to_bytes())
    assert errors(v, json.loads(parsed.to_bytes())) == []
    # The validator does reject a broken manifest.
    broken = json.loads(m.to_bytes())
    broken["schemaVersion"] = 3
    assert errors(v, broken)


def test_docker_manifest_validates_as_manifest_shape() -> None:
    v = image_validator("image-manifest-schema.json")
    m = _manifest()
    m.subject = None
    docker = manifest_to_docker(m)
    assert docker.media_type == mt.DOCKER_MANIFEST
    assert errors(v, docker.to_dict()) == []


def test_index_validates() -> None:
    v = image_validator("image-index-schema.json")
    idx = Index(
        media_type=mt.OCI_INDEX,
        manifests=[_full_descriptor(), Descriptor.for_bytes(mt.OCI_MANIFEST, b"x")],
        annotations={"k": "v"},
        subject=Descriptor.for_bytes(mt.OCI_MANIFEST, b"{}"),
        artifact_type="application/vnd.example+json",
    )
    assert errors(v, json.loads(idx.to_bytes())) == []
    assert errors(v, Index.parse(idx.to_bytes()).to_dict()) == []
    broken = idx.to_dict()
    broken["manifests"][0]["platform"].pop("os")
    assert errors(v, broken)


def test_image_config_validates() -> None:
    v = image_validator("config-schema.json")
    diff = Digest.from_bytes(b"layer")
    raw = json.dumps(
        {
            "created": "2024-01-02T03:04:05Z",
            "author": "me",
            "architecture": "arm",
            "variant": "v7",
            "os": "linux",
            "os.version": "1",
            "os.features": ["f"],
            "config": {
                "User": "1000:1000",
                "ExposedPorts": {"80/tcp": {}},
                "Env": ["A=1"],
                "Entrypoint": ["/bin/sh"],
                "Cmd": None,
                "Volumes": {"/data": {}},
                "WorkingDir": "/w",
                "Labels": {"x": "y"},
                "StopSignal": "SIGTERM",
                "ArgsEscaped": True,
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
            },
            "rootfs": {"type": "layers", "diff_ids": [diff]},
            "history": [
                {"created": "2024-01-02T03:04:05Z", "created_by": "x", "comment": "c"},
                {"created_by": "y", "empty_layer": True},
            ],
        }
    ).encode()
    cfg = ImageConfig.parse(raw)
    assert cfg.to_bytes() == raw
    assert errors(v, json.loads(cfg.to_bytes())) == []
    cfg.config.cmd = ["sh"]  # type: ignore[union-attr]
    assert errors(v, json.loads(cfg.to_bytes())) == []
    new = ImageConfig(architecture="amd64", os="linux")
    assert errors(v, json.loads(new.to_bytes())) == []
    bad = new.to_dict()
    bad["rootfs"]["type"] = "nope"
    assert errors(v, bad)


def test_layout_header_validates() -> None:
    v = image_validator("image-layout-schema.json")
    assert errors(v, {"imageLayoutVersion": "1.0.0"}) == []


# --- runtime-spec ---------------------------------------------------------------------

RICH_SPEC: dict[str, Any] = {
    "ociVersion": "1.3.0",
    "process": {
        "terminal": False,
        "consoleSize": {"height": 24, "width": 80},
        "user": {"uid": 1, "gid": 2, "umask": 18, "additionalGids": [3, 4], "username": "u"},
        "args": ["sh", "-c", "true"],
        "env": ["PATH=/bin"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_KILL"],
            "effective": ["CAP_KILL"],
            "inheritable": [],
            "permitted": ["CAP_KILL"],
            "ambient": [],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
        "apparmorProfile": "p",
        "oomScoreAdj": 100,
        "selinuxLabel": "l",
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        "scheduler": {"policy": "SCHED_OTHER", "nice": 1},
        "execCPUAffinity": {"initial": "0", "final": "0-1"},
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "h",
    "domainname": "d",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/data",
            "type": "bind",
            "source": "/srv",
            "options": ["rbind", "ro"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        },
    ],
    "hooks": {
        "prestart": [{"path": "/bin/true"}],
        "createRuntime": [{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}],
        "createContainer": [{"path": "/bin/true"}],
        "startContainer": [{"path": "/bin/true"}],
        "poststart": [{"path": "/bin/true"}],
        "poststop": [{"path": "/bin/true"}],
    },
    "annotations": {"a": "b"},
    "linux": {
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "resources": {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            ],
            "memory": {"limit": 536870912, "reservation": 1, "swap": -1, "swappiness": 0},
            "cpu": {"shares": 1024, "quota": 100000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 100},
            "blockIO": {
                "weight": 10,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
            "unified": {"memory.high": "max"},
        },
        "cgroupsPath": "/portside/abc",
        "namespaces": [
            {"type": "pid"},
            {"type": "network", "path": "/var/run/netns/x"},
            {"type": "mount"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "user"},
            {"type": "cgroup"},
            {"type": "time"},
        ],
        "devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438},
        ],
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
                },
            ],
        },
        "rootfsPropagation": "private",
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "mountLabel": "m",
        "intelRdt": {"closID": "c", "l3CacheSchema": "L3:0=ff"},
        "personality": {"domain": "LINUX"},
        "timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 0}},
        "netDevices": {"eth1": {"name": "net0"}},
        "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
    },
}


def test_runtime_schema_rejects_garbage() -> None:
    v = runtime_validator("config-schema.json")
    bad = copy.deepcopy(RICH_SPEC)
    bad["linux"]["namespaces"][0]["type"] = "bogus"
    assert errors(v, bad)
    assert errors(v, {"ociVersion": 1})


def test_rich_spec_validates_and_round_trips() -> None:
    v = runtime_validator("config-schema.json")
    assert errors(v, RICH_SPEC) == []
    spec = Spec.from_dict(RICH_SPEC)
    out = spec.to_dict()
    assert out == RICH_SPEC
    assert json.dumps(out) == json.dumps(RICH_SPEC)  # key order too
    assert errors(v, out) == []


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_validates(rootless: bool) -> None:
    v = runtime_validator("config-schema.json")
    d = default_spec(rootless, uid=1000, gid=1000)
    assert errors(v, d) == []
    assert Spec.from_dict(d).to_dict() == d


def test_spec_built_in_code_validates() -> None:
    from portside.oci.runtime_spec import Linux, Mount, Namespace, Process, Root

    spec = Spec(
        process=Process(args=["sh"], cwd="/"),
        root=Root(path="rootfs"),
        mounts=[Mount(destination="/proc", type="proc", source="proc")],
        linux=Linux(namespaces=[Namespace(type="pid"), Namespace(type="mount")]),
    )
    d = json.loads(spec.to_json())
    assert errors(runtime_validator("config-schema.json"), d) == []
    assert d["process"]["user"] == {"uid": 0, "gid": 0}


def test_state_validates() -> None:
    v = runtime_validator("state-schema.json")
    st = State(id="c1", status="running", pid=42, bundle="/b", annotations={"x": "y"})
    assert errors(v, json.loads(st.to_json())) == []
    assert errors(v, State(id="c1", status="creating", bundle="/b").to_dict()) == []
    assert errors(v, {"ociVersion": "1.3.0", "id": "x", "status": "paused", "bundle": "/"})


def test_specs_constant_points_at_shared() -> None:
    assert Path(SPECS).name == "specs"
    assert (Path(SPECS) / "runtime-spec" / "schema" / "state-schema.json").is_file()

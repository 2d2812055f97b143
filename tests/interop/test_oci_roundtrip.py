"""Documents written by umoci, skopeo and runc parse and serialise back byte for byte."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from portside.errors import InvalidReference
from portside.oci import mediatypes as mt
from portside.oci.config import ImageConfig
from portside.oci.digest import Digest
from portside.oci.index import Index
from portside.oci.manifest import (
    Manifest,
    manifest_to_docker,
    manifest_to_oci,
    parse_manifest_or_index,
)
from portside.oci.reference import parse_reference
from portside.oci.runtime_spec import Spec, State, default_spec
from tests.conftest import need_root, need_tool
from tests.unit.test_oci_reference import PATHS, TAGS
from tests.unit.test_oci_schemas import errors, image_validator, runtime_validator

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def run(*args: str, cwd: Path | None = None) -> str:
    out = subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, timeout=60)
    return out.stdout


def blob(layout: Path, digest: Digest) -> bytes:
    return (layout / "blobs" / digest.algorithm / digest.hex).read_bytes()


def check_layout(layout: Path) -> list[Manifest]:
    """Every document of an OCI layout: byte-identical round trip, digest == file name."""
    raw_index = (layout / "index.json").read_bytes()
    index = Index.parse(raw_index)
    assert index.to_bytes() == raw_index
    assert errors(image_validator("image-index-schema.json"), json.loads(raw_index)) == []
    manifests = []
    for entry in index.manifests:
        raw = blob(layout, entry.digest)
        doc = parse_manifest_or_index(raw, entry.media_type)
        assert isinstance(doc, Manifest)
        assert doc.to_bytes() == raw
        assert doc.digest == entry.digest
        assert doc.size == entry.size
        assert doc.content_type == entry.media_type
        config_raw = blob(layout, doc.config.digest)
        config = ImageConfig.parse(config_raw)
        assert config.to_bytes() == config_raw
        assert config.digest == doc.config.digest
        assert len(config_raw) == doc.config.size
        assert errors(image_validator("config-schema.json"), json.loads(config_raw)) == []
        for layer in doc.layers:
            assert Digest.from_bytes(blob(layout, layer.digest)) == layer.digest
        manifests.append(doc)
    return manifests


@pytest.fixture
def umoci_layout(tmp_path: Path) -> Path:
    """An image made entirely by umoci: new, one inserted file, config edits."""
    umoci = need_tool("umoci")
    layout = tmp_path / "layout"
    run(umoci, "init", "--layout", str(layout))
    run(umoci, "new", "--image", f"{layout}:t")
    (tmp_path / "hello").write_text("hello\n")
    run(umoci, "insert", "--image", f"{layout}:t", str(tmp_path / "hello"), "/hello")
    run(
        umoci,
        "config",
        "--image",
        f"{layout}:t",
        "--config.cmd",
        "sh",
        "--config.env",
        "A=1",
        "--config.label",
        "x=y",
        "--config.exposedports",
        "80/tcp",
        "--config.workingdir",
        "/w",
        "--author",
        "portside tests",
    )
    return layout


def test_umoci_documents_round_trip(umoci_layout: Path) -> None:
    (manifest,) = check_layout(umoci_layout)
    assert manifest.content_type == mt.OCI_MANIFEST
    assert [layer.media_type for layer in manifest.layers] == [mt.OCI_LAYER_GZIP]
    assert errors(image_validator("image-manifest-schema.json"), manifest.to_dict()) == []
    config = ImageConfig.parse(blob(umoci_layout, manifest.config.digest))
    assert config.config is not None
    assert config.config.cmd == ["sh"]
    assert config.config.env == ["A=1"]
    assert config.config.labels == {"x": "y"}
    assert config.author == "portside tests"
    assert len(config.diff_ids) == 1


def test_umoci_empty_image_round_trips(tmp_path: Path) -> None:
    umoci = need_tool("umoci")
    layout = tmp_path / "layout"
    run(umoci, "init", "--layout", str(layout))
    run(umoci, "new", "--image", f"{layout}:empty")
    (manifest,) = check_layout(layout)
    assert manifest.layers == []
    index = Index.parse((layout / "index.json").read_bytes())
    assert index.manifests[0].annotation("org.opencontainers.image.ref.name") == "empty"


@pytest.mark.parametrize("fmt", ["v2s2", "oci"])
def test_skopeo_documents_round_trip(umoci_layout: Path, tmp_path: Path, fmt: str) -> None:
    skopeo = need_tool("skopeo")
    dest = tmp_path / f"skopeo-{fmt}"
    run(skopeo, "copy", "--format", fmt, f"oci:{umoci_layout}:t", f"oci:{dest}:t")
    (copied,) = check_layout(dest)
    (original,) = check_layout(umoci_layout)
    if fmt == "v2s2":
        assert copied.content_type == mt.DOCKER_MANIFEST
        assert copied.config.media_type == mt.DOCKER_CONFIG
        assert [layer.media_type for layer in copied.layers] == [mt.DOCKER_LAYER_GZIP]
        # Our conversion of umoci's OCI manifest says the same as skopeo's.
        assert manifest_to_docker(original).to_dict() == json.loads(copied.to_bytes())
        # And converting skopeo's Docker manifest back gives the OCI manifest we started from.
        back = manifest_to_oci(copied)
        assert back.config == original.config
        assert back.layers == original.layers
    else:
        assert copied.content_type == mt.OCI_MANIFEST
        assert copied.config.digest == original.config.digest
        assert copied.layer_digests() == original.layer_digests()


def test_skopeo_reads_what_we_convert(umoci_layout: Path, tmp_path: Path) -> None:
    """A Docker manifest we wrote is accepted by skopeo (dir: transport) and converts back."""
    skopeo = need_tool("skopeo")
    (original,) = check_layout(umoci_layout)
    docker = manifest_to_docker(original)
    raw = docker.to_bytes()
    src = tmp_path / "dir"
    src.mkdir()
    (src / "version").write_text("Directory Transport Version: 1.1\n")
    (src / "manifest.json").write_bytes(raw)
    for desc in [docker.config, *docker.layers]:
        (src / desc.digest.hex).write_bytes(blob(umoci_layout, desc.digest))
    assert json.loads(run(skopeo, "inspect", "--raw", f"dir:{src}")) == json.loads(raw)
    dest = tmp_path / "copied"
    run(skopeo, "copy", "--format", "oci", f"dir:{src}", f"oci:{dest}:x")
    (copied,) = check_layout(dest)
    assert copied.content_type == mt.OCI_MANIFEST
    # skopeo re-marshals the config on a format change (umoci's trailing newline goes).
    ours, theirs = blob(umoci_layout, original.config.digest), blob(dest, copied.config.digest)
    assert json.loads(ours) == json.loads(theirs)
    assert copied.layers == manifest_to_oci(docker).layers


@pytest.mark.parametrize("rootless", [False, True])
def test_runc_spec_round_trips_and_matches_default(tmp_path: Path, rootless: bool) -> None:
    runc = need_tool("runc")
    args = [runc, "spec"] + (["--rootless"] if rootless else [])
    run(*args, cwd=tmp_path)
    raw = (tmp_path / "config.json").read_text()
    theirs = json.loads(raw)
    spec = Spec.parse(raw)
    assert spec.to_dict() == theirs
    assert json.dumps(spec.to_dict()) == json.dumps(theirs)  # key order too
    assert errors(runtime_validator("config-schema.json"), theirs) == []
    ours = default_spec(rootless)
    assert errors(runtime_validator("config-schema.json"), ours) == []
    # Same content; only the spec version differs (runc 1.1 says 1.0.2-dev).
    theirs.pop("ociVersion")
    ours.pop("ociVersion")
    assert ours == theirs


@pytest.mark.root
def test_runc_state_parses(tmp_path: Path) -> None:
    """`runc state` output (extra fields, and "paused") parses and round-trips."""
    need_root()
    runc = need_tool("runc")
    busybox = need_tool("busybox")
    bundle = tmp_path / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy(busybox, bundle / "rootfs" / "bin" / "busybox")
    spec = Spec.from_dict(default_spec())
    assert spec.process is not None
    spec.process.terminal = False
    spec.process.args = ["/bin/busybox", "sleep", "60"]
    (bundle / "config.json").write_bytes(spec.to_bytes())
    root = str(tmp_path / "runc-root")
    cid = f"portside-oci-{uuid.uuid4().hex[:12]}"
    # The container inherits runc's stdio: give it files, not pipes we would wait on.
    log = tmp_path / "runc.log"
    try:
        with log.open("wb") as err:
            subprocess.run(
                [runc, "--root", root, "create", "--bundle", str(bundle), cid],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=60,
            )
        raw = run(runc, "--root", root, "state", cid)
        state = State.parse(raw)
        assert state.to_dict() == json.loads(raw)
        assert (state.id, state.status, state.bundle) == (cid, "created", str(bundle))
        assert state.pid is not None and state.pid > 0
        assert state.extra["rootfs"] == str(bundle / "rootfs")
        assert errors(runtime_validator("state-schema.json"), state.to_dict()) == []
        run(runc, "--root", root, "pause", cid)
        assert State.parse(run(runc, "--root", root, "state", cid)).status == "paused"
    finally:
        subprocess.run(
            [runc, "--root", root, "delete", "--force", cid],
            timeout=60,
            check=False,
            capture_output=True,
        )


@pytest.mark.parametrize("rootless", [False, True])
def test_crun_spec_round_trips(tmp_path: Path, rootless: bool) -> None:
    crun = need_tool("crun")
    run(*([crun, "spec"] + (["--rootless"] if rootless else [])), cwd=tmp_path)
    raw = (tmp_path / "config.json").read_text()
    theirs = json.loads(raw)
    spec = Spec.parse(raw)
    assert json.dumps(spec.to_dict()) == json.dumps(theirs)
    assert errors(runtime_validator("config-schema.json"), theirs) == []
    assert spec.linux is not None and spec.linux.namespace("mount") is not None


# --- reference grammar held against skopeo (containers/image's reference parser) -------
# Every name points at 127.0.0.1:1, where nothing listens: a name skopeo accepts fails at
# once trying to reach that registry; one it rejects fails before, naming the problem.


def _skopeo_accepts(skopeo: str, name: str) -> bool:
    out = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{name}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0, out.stdout
    # skopeo's docker transport refuses name:tag@digest after parsing it (a policy, not
    # the grammar), so that message counts as accepted too.
    return "pinging container registry" in out.stderr or "both a tag and digest" in out.stderr


def _we_accept(name: str) -> bool:
    try:
        parse_reference(name)
    except InvalidReference:
        return False
    return True


SKOPEO_CASES = [
    "a",
    "a/b/c",
    "a__b",
    "a___b",
    "a.b",
    "a..b",
    "a-----b",
    "a_b.c-d",
    "a-",
    "-a",
    "A",
    "a/B",
    "a:t",
    "a:.t",
    "a:_t",
    "a:-t",
    "a:" + "t" * 128,
    "a:" + "t" * 129,
    "a@sha256:" + "0" * 64,
    "a:t@sha256:" + "0" * 64,
    "a@sha256:" + "0" * 63,
    "a@sha256:" + "A" * 64,
    "a@sha512:" + "0" * 128,
    "a//b",
    "a/",
    "a" * 200,
    "a" * 250,
]


@pytest.mark.parametrize("path", SKOPEO_CASES)
def test_reference_grammar_agrees_with_skopeo(path: str) -> None:
    skopeo = need_tool("skopeo")
    name = f"127.0.0.1:1/{path}"
    assert _we_accept(name) == _skopeo_accepts(skopeo, name), name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PATHS, st.one_of(st.none(), TAGS), st.sampled_from(["", "!", "A", "-", "..", "//"]))
def test_generated_references_agree_with_skopeo(path: str, tag: str | None, junk: str) -> None:
    skopeo = need_tool("skopeo")
    name = f"127.0.0.1:1/{path}{junk}" + (f":{tag}" if tag else "")
    assume(len(name) < 240)
    assert _we_accept(name) == _skopeo_accepts(skopeo, name), name

"""`portside save`, `load` and `import` against skopeo and umoci, through the real CLI."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from portside.images.copy import CopyOptions, copy
from portside.images.store import ImageStore
from portside.images.transports.local import LocalDestination
from portside.images.transports.oci_layout import OciLayoutSource
from tests.conftest import need_root, need_tool
from tests.fixtures.images import (
    busybox_entries,
    layer_tar,
    read_blob,
    read_json_blob,
    tagged_descriptor,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

PORTSIDE = [sys.executable, "-m", "portside.cli"]
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def portside(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*PORTSIDE, *args], capture_output=True, text=True, timeout=100, **kw)  # type: ignore[call-overload]
    if check and r.returncode != 0:
        raise AssertionError(f"portside {' '.join(args)} failed: {r.stderr}")
    return r  # type: ignore[no-any-return]


def run(*cmd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
    assert r.returncode == 0, f"{cmd}: {r.stderr}"
    return r.stdout


def images_json() -> list[dict]:
    return json.loads(portside("images", "--format", "json").stdout)  # type: ignore[no-any-return]


def config_digest(layout: Path, tag: str = "latest") -> str:
    return read_json_blob(layout, tagged_descriptor(layout, tag)["digest"])["config"]["digest"]


def put_in_store(layout: Path, name: str) -> ImageStore:
    store = ImageStore(Path(os.environ["PORTSIDE_ROOT"]))
    dest = LocalDestination(store, names=[name])
    try:
        copy(OciLayoutSource.from_dir(layout, "latest"), dest, CopyOptions())
    finally:
        dest.close()
    return store


def no_temp_left() -> bool:
    tmp = Path(os.environ["PORTSIDE_ROOT"]) / "tmp"
    return not tmp.exists() or not list(tmp.iterdir())


@pytest.mark.parametrize("compress", [False, True])
def test_docker_archive_from_skopeo_loads(
    fixture_layouts: dict[str, Path], tmp_path: Path, compress: bool
) -> None:
    need_tool("skopeo")
    src = fixture_layouts["multilayer-gzip"]
    archive = tmp_path / "sk.tar"
    run("skopeo", "copy", "-q", f"oci:{src}:latest", f"docker-archive:{archive}:foo/bar:v1")
    if compress:
        archive.with_suffix(".tar.gz").write_bytes(gzip.compress(archive.read_bytes(), 1))
        archive = archive.with_suffix(".tar.gz")
    if compress:  # and through stdin, decompressed while spooled
        with open(archive, "rb") as f:
            out = portside("load", stdin=f).stdout
    else:
        out = portside("load", "-i", str(archive)).stdout
    assert out == "Loaded image: docker.io/foo/bar:v1\n"
    (image,) = images_json()
    assert image["RepoTags"] == ["docker.io/foo/bar:v1"]
    assert image["Id"] == config_digest(src).split(":")[1]
    assert no_temp_left()


def test_oci_archive_from_skopeo_loads_named_and_unnamed(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    named = tmp_path / "named.tar"
    run(
        "skopeo",
        "copy",
        "-q",
        f"oci:{fixture_layouts['busybox']}:latest",
        f"oci-archive:{named}:foo/bb:v2",
    )
    out = portside("load", "-i", str(named)).stdout
    assert out == "Loaded image: docker.io/foo/bb:v2\n"
    bare = tmp_path / "bare.tar"
    src = fixture_layouts["multilayer-zstd"]
    run("skopeo", "copy", "-q", f"oci:{src}:latest", f"oci-archive:{bare}:latest")
    with open(bare, "rb") as f:
        out = portside("load", stdin=f).stdout
    assert out == f"Loaded image ID: sha256:{config_digest(src).split(':')[1]}\n"
    ids = sorted(i["Id"] for i in images_json())
    assert ids == sorted(
        config_digest(fixture_layouts[n]).split(":")[1] for n in ("busybox", "multilayer-zstd")
    )


def test_saved_archives_are_read_by_skopeo(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    src = fixture_layouts["multilayer-gzip"]
    put_in_store(src, "localhost/ml:1")
    # docker-archive to a file
    darchive = tmp_path / "d.tar"
    portside("save", "-o", str(darchive), "localhost/ml:1")
    manifest = json.loads(run("tar", "-xOf", str(darchive), "manifest.json"))
    assert manifest[0]["RepoTags"] == ["localhost/ml:1"]
    out = tmp_path / "from-docker"
    run("skopeo", "copy", "-q", f"docker-archive:{darchive}:localhost/ml:1", f"oci:{out}:x")
    got = read_json_blob(out, config_digest(out, "x"))
    assert got == read_json_blob(src, config_digest(src))
    # oci-archive to stdout
    oarchive = tmp_path / "o.tar"
    with open(oarchive, "wb") as f:
        r = subprocess.run(
            [*PORTSIDE, "save", "--format", "oci-archive", "localhost/ml:1"],
            stdout=f,
            stderr=subprocess.PIPE,
            timeout=100,
        )
    assert r.returncode == 0, r.stderr
    raw = run("skopeo", "inspect", "--raw", f"oci-archive:{oarchive}").encode()
    assert raw == read_blob(src, tagged_descriptor(src)["digest"])
    run(
        "skopeo", "copy", "-q", f"oci-archive:{oarchive}:localhost/ml:1", f"oci:{tmp_path / 'o2'}:y"
    )
    assert config_digest(tmp_path / "o2", "y") == config_digest(src)
    assert no_temp_left()


def test_save_and_load_round_trip_several_images(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    put_in_store(fixture_layouts["busybox"], "localhost/bb:1")
    store = put_in_store(fixture_layouts["multilayer-none"], "localhost/ml:2")
    for fmt in ("docker-archive", "oci-archive"):
        archive = tmp_path / f"{fmt}.tar"
        portside("save", "--format", fmt, "-o", str(archive), "localhost/bb:1", "localhost/ml:2")
        other = tmp_path / f"root-{fmt}"
        other.mkdir()
        out = portside("--root", str(other), "load", "-i", str(archive)).stdout
        assert out.splitlines() == ["Loaded image: localhost/bb:1", "Loaded image: localhost/ml:2"]
        loaded = json.loads(portside("--root", str(other), "images", "--format", "json").stdout)
        assert sorted(i["Id"] for i in loaded) == sorted(r.id for r in store.images())


def test_bad_archives_fail_with_one_line_and_store_nothing(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    archive = tmp_path / "sk.tar"
    run(
        "skopeo",
        "copy",
        "-q",
        f"oci:{fixture_layouts['busybox']}:latest",
        f"docker-archive:{archive}:a/b:c",
    )
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[:-300000])
    r = portside("load", "-i", str(cut), check=False)
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and "cut.tar" in r.stderr
    text = tmp_path / "x.txt"
    text.write_text("hello\n" * 1000)
    r = portside("load", "-i", str(text), check=False)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1 and "x.txt" in r.stderr
    r = portside("save", "-o", str(tmp_path / "none.tar"), "no/such:image", check=False)
    assert r.returncode == 125 and "no/such:image" in r.stderr
    assert not (tmp_path / "none.tar").exists()
    # a layer whose bytes are not what the config says: nothing stays in the content store
    tree = tmp_path / "tree"
    tree.mkdir()
    run("tar", "-xf", str(archive), "-C", str(tree))
    (layer_name,) = json.loads((tree / "manifest.json").read_text())[0]["Layers"]
    layer = tree / layer_name
    data = bytearray(layer.read_bytes())
    data[1000] ^= 0xFF
    layer.write_bytes(bytes(data))
    corrupt = tmp_path / "corrupt.tar"
    run("tar", "-cf", str(corrupt), "-C", str(tree), ".")
    r = portside("load", "-i", str(corrupt), check=False)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
    assert "digest mismatch" in r.stderr
    # a schema 1 manifest in an oci-archive is refused by name
    lay = tmp_path / "s1"
    (lay / "blobs" / "sha256").mkdir(parents=True)
    raw = json.dumps({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}).encode()
    digest = hashlib.sha256(raw).hexdigest()
    (lay / "blobs" / "sha256" / digest).write_bytes(raw)
    (lay / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    desc = {"mediaType": SCHEMA1, "digest": f"sha256:{digest}", "size": len(raw)}
    (lay / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    s1 = tmp_path / "s1.tar"
    run("tar", "-cf", str(s1), "-C", str(lay), ".")
    r = portside("load", "-i", str(s1), check=False)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
    assert "schema 1" in r.stderr
    assert images_json() == []
    store = ImageStore(Path(os.environ["PORTSIDE_ROOT"]))
    assert list(store.content.blobs()) == []
    assert no_temp_left()


def _tree_matches_tar(root: Path, tar: bytes) -> list[str]:
    problems = []
    seen = set()
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for m in tf:
            rel = m.name.rstrip("/").removeprefix("./")
            seen.add(rel)
            p = root / rel
            st = os.lstat(p) if os.path.lexists(p) else None
            if st is None:
                problems.append(f"{rel}: missing")
                continue
            if m.issym():
                if not stat.S_ISLNK(st.st_mode) or os.readlink(p) != m.linkname:
                    problems.append(f"{rel}: symlink differs")
                continue
            if stat.S_IMODE(st.st_mode) != m.mode or (st.st_uid, st.st_gid) != (m.uid, m.gid):
                problems.append(f"{rel}: mode/owner {st.st_mode:o} {st.st_uid}:{st.st_gid}")
            if m.isfile():
                f = tf.extractfile(m)
                assert f is not None
                if not stat.S_ISREG(st.st_mode) or p.read_bytes() != f.read():
                    problems.append(f"{rel}: content differs")
            elif m.isdir() and not stat.S_ISDIR(st.st_mode):
                problems.append(f"{rel}: not a directory")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            rel = str(Path(dirpath, name).relative_to(root))
            if rel not in seen:
                problems.append(f"{rel}: not in the tar")
    return problems


def test_imported_busybox_is_unpacked_by_umoci_as_the_tar(tmp_path: Path) -> None:
    need_tool("skopeo")
    need_tool("umoci")
    need_root()
    tar = layer_tar(busybox_entries())
    rootfs = tmp_path / "rootfs.tar.gz"
    rootfs.write_bytes(gzip.compress(tar, 1))
    out = portside(
        "import",
        "-c",
        'CMD ["sh"]',
        "-c",
        "ENV A=1",
        "-m",
        "from a tarball",
        str(rootfs),
        "my/bb:1",
    ).stdout.strip()
    assert out.startswith("sha256:") and len(out) == 71
    (image,) = images_json()
    assert image["RepoTags"] == ["docker.io/my/bb:1"] and out == "sha256:" + image["Id"]
    lay = tmp_path / "lay"
    portside("save", "--format", "oci-dir", "-o", str(lay), "my/bb:1")
    run("skopeo", "copy", "-q", f"oci:{lay}:docker.io/my/bb:1", f"oci:{tmp_path / 'u'}:x")
    config = read_json_blob(tmp_path / "u", config_digest(tmp_path / "u", "x"))
    assert config["config"] == {"Cmd": ["sh"], "Env": ["A=1"]}
    assert config["history"][0]["comment"] == "from a tarball"
    run("umoci", "unpack", "--image", f"{tmp_path / 'u'}:x", str(tmp_path / "bundle"))
    assert _tree_matches_tar(tmp_path / "bundle" / "rootfs", tar) == []
    r = portside("import", str(tmp_path / "nope.tar"), check=False)
    assert r.returncode == 125 and "nope.tar" in r.stderr
    assert no_temp_left()


def test_multiplatform_oci_archive_loads_the_host_platform(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("skopeo")
    src = fixture_layouts["multiplatform"]
    archive = tmp_path / "mp.tar"
    run("skopeo", "copy", "-q", "--all", f"oci:{src}:latest", f"oci-archive:{archive}:mp/x:1")
    assert portside("load", "-i", str(archive)).stdout == "Loaded image: docker.io/mp/x:1\n"
    (image,) = images_json()
    index = read_json_blob(src, tagged_descriptor(src)["digest"])
    host = next(
        m for m in index["manifests"] if m["platform"]["architecture"] == image["Architecture"]
    )
    assert image["Digest"] == host["digest"]
    saved = tmp_path / "saved.tar"
    portside("save", "-o", str(saved), "mp/x:1")
    (entry,) = json.loads(run("tar", "-xOf", str(saved), "manifest.json"))
    assert entry["Config"] == image["Id"] + ".json"


def test_unwritable_output_is_one_line(fixture_layouts: dict[str, Path]) -> None:
    put_in_store(fixture_layouts["busybox"], "localhost/bb:1")
    r = portside("save", "-o", "/proc/x.tar", "localhost/bb:1", check=False)
    assert r.returncode == 125
    assert r.stderr == "Error: /proc/x.tar: cannot create: No such file or directory\n"
    r = portside("save", "--format", "oci-dir", "-o", "/proc/x", "localhost/bb:1", check=False)
    assert r.returncode == 125 and r.stderr.startswith("Error: /proc/x:")
    assert len(r.stderr.splitlines()) == 1


def test_podman_loads_what_portside_saves_and_back(
    fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    need_tool("podman")
    need_root()
    src = fixture_layouts["multilayer-gzip"]
    put_in_store(src, "example.com/ml:1")
    runroot = tempfile.mkdtemp(prefix="ps-")  # podman wants a runroot under 50 characters
    try:
        _podman_round_trip(tmp_path, runroot, config_digest(src).split(":")[1])
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def _podman_round_trip(tmp_path: Path, runroot: str, want_id: str) -> None:
    podman = [
        "podman",
        "--root", str(tmp_path / "proot"),
        "--runroot", runroot,
        "--storage-driver", "vfs",
        "--cgroup-manager", "cgroupfs",
        "--events-backend", "file",
    ]  # fmt: skip
    for fmt in ("docker-archive", "oci-archive"):
        archive = tmp_path / f"{fmt}.tar"
        portside("save", "--format", fmt, "-o", str(archive), "example.com/ml:1")
        run(*podman, "load", "-q", "-i", str(archive))
        listed = json.loads(run(*podman, "images", "--format", "json"))
        assert [(i["Id"], i["Names"]) for i in listed] == [(want_id, ["example.com/ml:1"])], fmt
        run(*podman, "rmi", "-a", "-f")
    run(*podman, "load", "-q", "-i", str(tmp_path / "docker-archive.tar"))
    for fmt in ("docker-archive", "oci-archive"):
        archive = tmp_path / f"podman-{fmt}.tar"
        run(*podman, "save", "-q", "--format", fmt, "-o", str(archive), "example.com/ml:1")
        other = tmp_path / f"root-{fmt}"
        out = portside("--root", str(other), "load", "-i", str(archive)).stdout
        assert out == "Loaded image: example.com/ml:1\n", fmt
        loaded = json.loads(portside("--root", str(other), "images", "--format", "json").stdout)
        # podman re-tars layers from its storage on save, so compare with what it wrote
        assert [i["Id"] for i in loaded] == [_archive_config_hex(archive, tmp_path / fmt)]
    run(*podman, "rmi", "-a", "-f")


def _archive_config_hex(archive: Path, tree: Path) -> str:
    """The config digest hex of the only image of an archive, read with tar and json only."""
    tree.mkdir()
    run("tar", "-xf", str(archive), "-C", str(tree))
    if (tree / "manifest.json").exists():
        (entry,) = json.loads((tree / "manifest.json").read_text())
        return hashlib.sha256((tree / entry["Config"]).read_bytes()).hexdigest()
    (desc,) = json.loads((tree / "index.json").read_text())["manifests"]
    manifest = read_json_blob(tree, desc["digest"])
    return manifest["config"]["digest"].split(":")[1]

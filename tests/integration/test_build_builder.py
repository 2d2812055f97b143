"""`portside build` end to end: real RUN containers (portside-runtime and runc), the
layer cache across CLI calls, failure clean-up (no container, mount, snapshot, cgroup
or runtime state left), the built image run with `portside run`, pushed to the
fixture registry and read by skopeo."""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_tool
from tests.integration.test_engine_support import IMAGE, Env, engine_template, env, runtime_arg

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(180)]

HEREDOCS = f"""# syntax=docker/dockerfile:1
FROM {IMAGE} AS base
ARG WHO=world
ENV GREETING="hello $WHO"
RUN <<EOF
set -e
echo "heredoc ran as $(id -u)" > /ran.txt
echo "$GREETING" >> /ran.txt
EOF
RUN <<EOF
#!/bin/sh
echo "script with a shebang" > /script.txt
EOF
COPY <<EOF /etc/motd
motd for $WHO
EOF
COPY <<'EOF' /etc/raw
not expanded: $WHO
EOF
RUN --mount=type=cache,target=/cache echo cached > /cache/marker && ls /cache > /cache-list
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfs-list
RUN --mount=type=bind,target=/ctx cat /ctx/data.txt > /from-ctx.txt
FROM base
COPY --from=base /ran.txt /final/ran.txt
CMD ["cat", "/final/ran.txt"]
"""


def _ctx(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Containerfile").write_text(text)
    for name, data in (files or {"data.txt": "context data\n"}).items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    return ctx


def _run(env: Env, image: str, *cmd: str) -> str:
    return env.cli("run", "--rm", image, *cmd).stdout


@pytest.mark.parametrize("runtime", ["portside-runtime", "runc"])
def test_heredocs_mounts_and_files_through_runtime(env: Env, tmp_path: Path, runtime: str) -> None:
    ctx = _ctx(tmp_path, HEREDOCS)
    iid = tmp_path / "iid"
    out = env.cli(
        "build", "--runtime", runtime_arg(runtime), "--build-arg", "WHO=tests",
        "-t", "localhost/hd:1", "-t", "localhost/hd:2", "--iidfile", str(iid),
        "--label", "built.by=portside", str(ctx),
    ).stdout  # fmt: skip
    assert "[1/2] STEP 1/10: FROM localhost/busybox:latest AS base" in out
    assert "[2/2] STEP 3/3: CMD" in out
    assert "Successfully tagged localhost/hd:1" in out
    assert "Successfully tagged localhost/hd:2" in out
    image_id = out.strip().splitlines()[-1]
    assert iid.read_text() == f"sha256:{image_id}"
    assert _run(env, "localhost/hd:2") == "heredoc ran as 0\nhello tests\n"
    files = _run(
        env, "localhost/hd:1", "sh", "-c",
        "cat /script.txt /etc/motd /etc/raw /cache-list /tmpfs-list /from-ctx.txt;"
        "ls -d /cache /scratch /ctx 2>/dev/null; echo end",
    )  # fmt: skip
    # mount targets the image lacked are gone again (buildah removes them too)
    assert files.splitlines() == [
        "script with a shebang",
        "motd for tests",
        "not expanded: $WHO",
        "marker",
        "x",
        "context data",
        "end",
    ]
    doc = json.loads(env.cli("image", "inspect", "localhost/hd:1").stdout)[0]
    assert doc["Config"]["Labels"] == {"built.by": "portside"}
    assert doc["Config"]["Cmd"] == ["cat", "/final/ran.txt"]
    assert "GREETING=hello tests" in doc["Config"]["Env"]


CACHED = f"""FROM {IMAGE}
ENV A=1
RUN echo first > /first
COPY one.txt /one.txt
RUN cat /one.txt > /copy-of-one
COPY two.txt /two.txt
CMD ["cat", "/two.txt"]
"""


def _hits(out: str) -> list[int]:
    """Which steps (by number) were cache hits."""
    hits = []
    step = 0
    for line in out.splitlines():
        if line.startswith("STEP "):
            step = int(line.split()[1].split("/")[0])
        elif line.startswith("--> Using cache "):
            hits.append(step)
    return hits


def test_cache_rebuild_change_and_no_cache(env: Env, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, CACHED, {"one.txt": "one\n", "two.txt": "two\n"})
    first = env.cli("build", "-t", "localhost/c:1", str(ctx)).stdout
    assert _hits(first) == []
    id1 = first.strip().splitlines()[-1]
    again = env.cli("build", "-t", "localhost/c:1", str(ctx)).stdout
    assert _hits(again) == [2, 3, 4, 5, 6, 7]
    assert again.strip().splitlines()[-1] == id1
    # the same content with a new mtime is still a hit; new content rebuilds from there on
    os.utime(ctx / "one.txt", (1, 1))
    assert _hits(env.cli("build", str(ctx)).stdout) == [2, 3, 4, 5, 6, 7]
    (ctx / "one.txt").write_text("ONE\n")
    changed = env.cli("build", "-t", "localhost/c:2", str(ctx)).stdout
    assert _hits(changed) == [2, 3]
    assert _run(env, "localhost/c:2", "cat", "/copy-of-one") == "ONE\n"
    assert _hits(env.cli("build", "--no-cache", str(ctx)).stdout) == []
    # a build arg nothing declares does not change the keys
    assert _hits(env.cli("build", "--build-arg", "UNUSED=1", str(ctx)).stdout) == [
        2, 3, 4, 5, 6, 7,
    ]  # fmt: skip


def _leftovers(env: Env) -> list[str]:
    found = []
    found += env.mounts_under(env.root) + env.mounts_under(env.runroot)
    engine = env.engine()
    try:
        found += [f"container {c.id}" for c in engine.list(all=True)]
        found += [f"snapshot {s.key}" for s in engine.layers.snapshots()]
    finally:
        engine.close()
    for hier in Path("/sys/fs/cgroup").iterdir():
        parent = hier / "portside"
        if parent.is_dir():
            # RUN containers are named build-PID-..., PID the builder's: a cgroup of a
            # builder that has exited is a leak (other tests' live builds are not)
            for p in parent.glob("build-*"):
                if not Path(f"/proc/{p.name.split('-')[1]}").exists():
                    found.append(str(p))
    for d in (env.runroot / "runtime").glob("*/build-*"):
        found.append(str(d))
    found += [str(p) for p in (env.runroot / "build").glob("*")]
    return found


@pytest.mark.parametrize("runtime", ["portside-runtime", "runc"])
def test_failing_run_shows_output_and_leaves_nothing(
    env: Env, tmp_path: Path, runtime: str
) -> None:
    text = f"FROM {IMAGE}\nCOPY data.txt /d\nRUN echo before-failing; touch /junk; exit 3\n"
    ctx = _ctx(tmp_path, text)
    res = env.cli("build", "--runtime", runtime_arg(runtime), str(ctx), check=False)
    assert res.returncode == 3
    assert "before-failing" in res.stdout
    assert res.stderr.strip().splitlines()[-1] == (
        'Error: error building at STEP "RUN echo before-failing; touch /junk; exit 3": '
        "exit status 3"
    )
    assert _leftovers(env) == []
    quiet = env.cli("build", "-q", str(ctx), check=False)
    assert quiet.returncode == 3 and quiet.stdout == ""
    assert "before-failing" in quiet.stderr
    assert _leftovers(env) == []


def test_syntax_error_is_one_line_naming_it(env: Env, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, f"FROM {IMAGE}\nRUN true\nEXPOSE 80/bogus\nCMD x\n")
    res = env.cli("build", str(ctx), check=False)
    assert res.returncode == 125
    assert res.stderr.strip().splitlines() == [
        "Error: Containerfile:3: EXPOSE: invalid protocol 'bogus' in '80/bogus'"
    ]
    ctx2 = _ctx(tmp_path / "b", f"FROM {IMAGE}\nFROBNICATE x\n")
    res = env.cli("build", str(ctx2), check=False)
    assert res.returncode == 125
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Containerfile:2" in res.stderr
    ctx3 = _ctx(tmp_path / "c", f"FROM {IMAGE}\nUSER ghost\nRUN true\n")
    res = env.cli("build", str(ctx3), check=False)
    assert res.returncode == 125
    assert res.stderr.strip().splitlines() == [
        'Error: error building at STEP "RUN true": unable to find user ghost: '
        "no matching entries in passwd file"
    ]
    assert _leftovers(env) == []


def test_quiet_stdin_file_and_tar_context(env: Env, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "", {"data.txt": "from the tar\n"})
    (ctx / "Containerfile").unlink()
    text = f"FROM {IMAGE}\nCOPY data.txt /data.txt\n"
    quiet = env.cli("build", "-q", "-f", "-", "-t", "localhost/q:1", str(ctx), input=text)
    assert len(quiet.stdout.strip().splitlines()) == 1
    assert len(quiet.stdout.strip()) == 64
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", text.encode()), ("data.txt", b"from stdin\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    proc = subprocess.run(
        [*env_cli(env), "build", "-q", "-t", "localhost/q:2", "-"],
        input=buf.getvalue(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert _run(env, "localhost/q:2", "cat", "/data.txt") == "from stdin\n"
    archive = tmp_path / "ctx.tar"
    archive.write_bytes(buf.getvalue())
    # a bare --layers (podman: --layers=true) does not take the context as its value
    env.cli("build", "-q", "-t", "localhost/q:3", "--layers", str(archive))
    assert _run(env, "localhost/q:3", "cat", "/data.txt") == "from stdin\n"


def env_cli(env: Env) -> list[str]:
    from tests.integration.test_engine_support import PORTSIDE

    return [PORTSIDE]


def _layers(env: Env, ref: str) -> int:
    doc = json.loads(env.cli("image", "inspect", ref).stdout)[0]
    return len(doc["RootFS"]["Layers"])


def test_layers_false_squash_and_formats(env: Env, tmp_path: Path) -> None:
    text = f"""FROM {IMAGE}
RUN echo a > /a
COPY data.txt /d
RUN rm /a && echo b > /b
HEALTHCHECK CMD ["true"]
"""
    ctx = _ctx(tmp_path, text)
    env.cli("build", "-t", "localhost/l:layers", str(ctx))
    assert _layers(env, "localhost/l:layers") == 4
    res = env.cli("build", "--layers=false", "-t", "localhost/l:one", str(ctx))
    assert "Using cache" not in res.stdout
    assert _layers(env, "localhost/l:one") == 2
    env.cli("build", "--squash", "-t", "localhost/l:squash", str(ctx))
    assert _layers(env, "localhost/l:squash") == 2
    for ref in ("localhost/l:one", "localhost/l:squash"):
        assert _run(env, ref, "sh", "-c", "cat /b /d; test ! -e /a && echo gone") == (
            "b\ncontext data\ngone\n"
        )
    # OCI (the default) has no HEALTHCHECK: dropped with a warning, as podman does
    oci = env.cli("build", "-t", "localhost/l:oci", str(ctx))
    assert "HEALTHCHECK is not supported for OCI image format" in oci.stderr
    docker = env.cli("build", "--format", "docker", "-t", "localhost/l:docker", str(ctx))
    assert "HEALTHCHECK" not in docker.stderr
    doc = json.loads(env.cli("image", "inspect", "localhost/l:docker").stdout)[0]
    assert doc["Config"]["Healthcheck"]["Test"] == ["CMD", "true"]


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server over tmp_path/www (ADD of a URL, without the internet)."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "remote.txt").write_text("downloaded\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(www), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_add_url_network_none_and_push(
    env: Env, tmp_path: Path, http_files: str, registry: object
) -> None:
    need_tool("skopeo")
    import hashlib

    digest = hashlib.sha256(b"downloaded\n").hexdigest()
    text = f"""FROM {IMAGE}
ADD --checksum=sha256:{digest} {http_files}/remote.txt /srv/
RUN --network=none ip -o link | cut -d: -f2 | tr -d ' ' > /links
"""
    ctx = _ctx(tmp_path, text)
    env.cli("build", "-t", "localhost/net:1", str(ctx))
    out = _run(
        env, "localhost/net:1", "sh", "-c", "cat /srv/remote.txt /links; stat -c %a /srv/remote.txt"
    )
    assert out == "downloaded\nlo\n600\n"
    # the URL's content is part of the cache key: a changed file is fetched again
    unchecked = _ctx(tmp_path / "u", f"FROM {IMAGE}\nADD {http_files}/remote.txt /r.txt\n")
    assert "Using cache" not in env.cli("build", str(unchecked)).stdout
    assert "Using cache" in env.cli("build", str(unchecked)).stdout
    (tmp_path / "www" / "remote.txt").write_text("changed\n")
    out = env.cli("build", "-t", "localhost/net:2", str(unchecked)).stdout
    assert "Using cache" not in out
    assert _run(env, "localhost/net:2", "cat", "/r.txt") == "changed\n"
    bad = _ctx(tmp_path / "bad", text.replace(digest, "0" * 64))
    res = env.cli("build", str(bad), check=False)
    assert res.returncode != 0 and "checksum mismatch" in res.stderr
    host = registry.host
    target = f"{host}/buildtest/net:v1"
    env.cli("push", "-q", "--tls-verify=false", "localhost/net:1", target)
    info = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{target}"],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(info.stdout)
    assert len(doc["Layers"]) == 3


def test_reproducible_with_source_date_epoch(env: Env, tmp_path: Path) -> None:
    text = f"FROM {IMAGE}\nRUN echo made > /made && mkdir /dir\nCOPY data.txt /d\nENV X=1\n"
    ctx = _ctx(tmp_path, text)
    ids = []
    for _ in range(2):
        proc = subprocess.run(
            [*env_cli(env), "build", "-q", "--no-cache", str(ctx)],
            capture_output=True,
            text=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
            check=True,
        )
        ids.append(proc.stdout.strip())
    assert ids[0] == ids[1]
    doc = json.loads(env.cli("image", "inspect", ids[0]).stdout)[0]
    assert doc["Created"].startswith("2023-11-14T22:13:20")


def test_onbuild_user_and_base_pulled_from_registry(
    env: Env, tmp_path: Path, pushed_images: dict[str, str]
) -> None:
    remote = pushed_images["busybox"]
    parent = _ctx(tmp_path / "p", f"""FROM {remote}
RUN echo 'nobody:x:65534:65534:nobody:/home/nobody:/bin/sh' >> /etc/passwd
ONBUILD COPY data.txt /onbuild.txt
ONBUILD RUN echo "trigger ran as $(id -u)" > /trigger.txt
""")  # fmt: skip
    res = env.cli("build", "--pull=never", "-t", "localhost/parent:1", str(parent), check=False)
    assert res.returncode == 125
    assert len(res.stderr.strip().splitlines()) == 1 and remote.split("/")[0] in res.stderr
    # ONBUILD needs the docker format (OCI configs have no field for it, as podman says)
    env.cli("build", "-q", "--format", "docker", "-t", "localhost/parent:1", str(parent))
    child = _ctx(tmp_path / "c", """FROM localhost/parent:1
USER nobody
RUN id -u > /tmp/uid && echo "$HOME" > /tmp/home
""", {"data.txt": "child context\n"})  # fmt: skip
    out = env.cli("build", "-t", "localhost/child:1", str(child)).stdout
    assert "STEP 2/5: COPY data.txt /onbuild.txt" in out
    got = _run(env, "localhost/child:1", "cat", "/onbuild.txt", "/trigger.txt", "/tmp/uid")
    assert got == "child context\ntrigger ran as 0\n65534\n"
    doc = json.loads(env.cli("image", "inspect", "localhost/child:1").stdout)[0]
    assert doc["Config"]["User"] == "nobody"
    assert not doc["Config"].get("OnBuild")


def test_output_archives_and_files(env: Env, tmp_path: Path) -> None:
    need_tool("skopeo")
    ctx = _ctx(tmp_path, f'FROM {IMAGE}\nCOPY data.txt /data.txt\nCMD ["true"]\n')
    out = tmp_path / "out"
    env.cli(
        "build", "-q", "-t", "localhost/o:1",
        "--output", f"type=oci,dest={out}/oci.tar",
        "--output", f"type=docker,dest={out}/docker.tar",
        "-o", f"type=local,dest={out}/files",
        "-o", f"type=tar,dest={out}/files.tar",
        str(ctx),
    )  # fmt: skip
    for transport in ("oci-archive", "docker-archive"):
        name = "oci" if transport == "oci-archive" else "docker"
        info = subprocess.run(
            ["skopeo", "inspect", "--config", f"{transport}:{out}/{name}.tar"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(info.stdout)["config"]["Cmd"] == ["true"]
    assert (out / "files" / "data.txt").read_text() == "context data\n"
    assert (out / "files" / "bin" / "busybox").is_file()
    with tarfile.open(out / "files.tar") as tf:
        member = tf.extractfile("./data.txt")
        assert member is not None and member.read() == b"context data\n"
    assert env.mounts_under(env.root) == []
    bad = env.cli("build", "-o", "type=zip,dest=x", str(ctx), check=False)
    assert bad.returncode == 125 and "type=zip" in bad.stderr


def test_secret_mount_is_readable_in_run_and_never_in_the_image(env: Env, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t\n")
    text = f"""FROM {IMAGE}
RUN --mount=type=secret,id=token grep -c cr3 /run/secrets/token > /seen \
 && stat -c %a /run/secrets/token >> /seen
RUN --mount=type=secret,id=token,target=/etc/tok,mode=0440,uid=65534 \
    stat -c '%a %u' /etc/tok > /seen2
RUN --mount=type=secret,id=absent echo optional > /optional
"""
    ctx = _ctx(tmp_path, text)
    env.cli("build", "-q", "--secret", f"id=token,src={secret}", "-t", "localhost/s:1", str(ctx))
    script = "cat /seen /seen2 /optional; ls -A /run/secrets; test -e /etc/tok || echo no-tok"
    assert _run(env, "localhost/s:1", "sh", "-c", script).splitlines() == [
        "1",
        "400",
        "440 65534",
        "optional",
        "no-tok",
    ]
    # no layer blob holds the secret
    import gzip

    for blob in (env.root / "content" / "blobs" / "sha256").iterdir():
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        assert b"s3cr3t" not in data, blob.name
    required = _ctx(
        tmp_path / "r", f"FROM {IMAGE}\nRUN --mount=type=secret,id=x,required cat /run/secrets/x\n"
    )
    res = env.cli("build", str(required), check=False)
    assert res.returncode == 125 and "no --secret id=x was given" in res.stderr


def test_podman_flags_env_annotation_argfile_timestamp_ignorefile_platform(
    env: Env, tmp_path: Path
) -> None:
    text = f"""FROM {IMAGE}
ARG FROM_FILE
ARG FROM_CLI
RUN echo "$FROM_FILE $FROM_CLI" > /args
COPY . /ctx/
ENV KEEP=1 OVERRIDE=image
"""
    ctx = _ctx(tmp_path, text, {"data.txt": "x\n", "secret.key": "k\n", "keep.txt": "k\n"})
    (ctx / ".containerignore").write_text("keep.txt\n")
    ignore = tmp_path / "my.ignore"
    ignore.write_text("secret.key\nContainerfile\n.containerignore\n")
    argfile = tmp_path / "args"
    argfile.write_text("# a comment\nFROM_FILE=file\n\nFROM_CLI=overridden\n")
    env.cli(
        "build", "-q", "-t", "localhost/f:1", "--build-arg-file", str(argfile),
        "--build-arg", "FROM_CLI=cli", "--env", "OVERRIDE=cli", "--env", "ADDED=yes",
        "--annotation", "org.example.note=hi", "--timestamp", "1600000000",
        "--ignorefile", str(ignore), "--platform", "linux/" + _arch(), "--rm", "--force-rm",
        str(ctx),
    )  # fmt: skip
    out = _run(
        env,
        "localhost/f:1",
        "sh",
        "-c",
        "cat /args; ls /ctx; env | grep -E '^(KEEP|OVERRIDE|ADDED)=' | sort",
    )
    assert out.splitlines() == [
        "file cli", "data.txt", "keep.txt", "ADDED=yes", "KEEP=1", "OVERRIDE=cli",
    ]  # fmt: skip
    doc = json.loads(env.cli("image", "inspect", "localhost/f:1").stdout)[0]
    assert doc["Created"].startswith("2020-09-13T12:26:40")
    engine = env.engine()
    try:
        manifest = engine.images.manifest(engine.images.get("localhost/f:1"))
    finally:
        engine.close()
    assert manifest["annotations"] == {"org.example.note": "hi"}
    res = env.cli("build", "--platform", "linux/s390x", str(ctx), check=False)
    assert res.returncode == 125 and "only linux/" in res.stderr


def _arch() -> str:
    from portside.oci.platform import host_platform

    return host_platform().architecture


@pytest.mark.parametrize("runtime", ["portside-runtime", "runc"])
def test_kill_9_mid_run_is_cleaned_by_the_next_build(
    env: Env, tmp_path: Path, runtime: str
) -> None:
    import signal
    import time

    ctx = _ctx(tmp_path, f"FROM {IMAGE}\nRUN touch /started && sleep 300\n")
    proc = subprocess.Popen(
        [*env_cli(env), "build", "--runtime", runtime_arg(runtime), str(ctx)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((env.runroot / "runtime").glob("*/build-*")):
            assert time.monotonic() < deadline, "the RUN container never started"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the builder only: its RUN container lives on
        proc.wait()
    assert _leftovers(env) != []
    # the next build (of anything) removes the dead build's container, mounts and snapshot
    quick = _ctx(tmp_path / "q", f"FROM {IMAGE}\nENV A=1\n")
    env.cli("build", "-q", str(quick))
    deadline = time.monotonic() + 30
    while _leftovers(env):
        assert time.monotonic() < deadline, _leftovers(env)
        time.sleep(0.2)

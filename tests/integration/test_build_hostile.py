"""Hostile build contexts and Containerfiles: COPY/ADD sources that try to leave the
context (`..`, absolute paths, symlinks, --from), destinations through an image's
symlink, ADD of a tar with escaping members, a context tar with tricks, an ignore-file
re-include of an outside path. Each test keeps a sentinel directory outside the
context and checks that it is untouched and never read into the image."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration.test_build_builder import _leftovers
from tests.integration.test_engine_support import IMAGE, PORTSIDE, Env, engine_template, env

__all__ = ["engine_template", "env"]

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.timeout(120)]

SECRET = "host secret, never in an image\n"


def _outside(tmp_path: Path) -> Path:
    """A host directory next to the context with a secret, a tar and a victim file."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret").write_text(SECRET)
    (out / "victim").write_text("original\n")
    os.chmod(out, 0o750)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        _add(tf, "from-host-tar", SECRET.encode())
    (out / "host.tar").write_bytes(buf.getvalue())
    return out


def _untouched(out: Path) -> None:
    assert sorted(os.listdir(out)) == ["host.tar", "secret", "victim"]
    assert (out / "secret").read_text() == SECRET
    assert (out / "victim").read_text() == "original\n"
    assert os.stat(out).st_mode & 0o7777 == 0o750
    assert os.stat(out / "victim").st_mode & 0o7777 == 0o644


def _add(tf: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    else:
        tf.addfile(info)


def _ctx(tmp_path: Path, text: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(text)
    (ctx / "data.txt").write_text("context data\n")
    return ctx


def _files_with_secret(root: Path) -> list[str]:
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes():
                found.append(str(p.relative_to(root)))
    return found


def _build(env: Env, ctx: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    return env.cli("build", "-q", "-o", f"type=local,dest={dest}", str(ctx), check=False)


@pytest.mark.parametrize(
    "source",
    ["../outside/secret", "sub/../../outside/secret", "ABS/secret", "abs-link", "rel-link",
     "dir-link/secret", "dir-link/*"],
)  # fmt: skip
def test_copy_source_never_leaves_the_context(env: Env, tmp_path: Path, source: str) -> None:
    out = _outside(tmp_path)
    source = source.replace("ABS", str(out))
    ctx = _ctx(tmp_path, f"FROM {IMAGE}\nCOPY {source} /got\n")
    (ctx / "sub").mkdir()
    os.symlink(out / "secret", ctx / "abs-link")
    os.symlink("../outside/secret", ctx / "rel-link")
    os.symlink(out, ctx / "dir-link")
    files = tmp_path / "files"
    proc = _build(env, ctx, files)
    # refused, or resolved inside the context (where there is no such file): never the secret
    assert proc.returncode != 0, proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not files.exists() or _files_with_secret(files) == []
    _untouched(out)
    assert _leftovers(env) == []  # failed or not: no mount, snapshot, cgroup left


def test_copy_dot_keeps_symlinks_as_links_and_ignore_reinclude_stays_inside(
    env: Env, tmp_path: Path
) -> None:
    out = _outside(tmp_path)
    ctx = _ctx(tmp_path, f"FROM {IMAGE}\nCOPY . /ctx/\n")
    os.symlink(out / "secret", ctx / "abs-link")
    os.symlink(out, ctx / "dir-link")
    (ctx / ".containerignore").write_text(f"*\n!data.txt\n!../outside\n!{out}/secret\n!dir-link\n")
    files = tmp_path / "files"
    proc = _build(env, ctx, files)
    assert proc.returncode == 0, proc.stderr
    assert (files / "ctx" / "data.txt").read_text() == "context data\n"
    assert os.readlink(files / "ctx" / "dir-link") == str(out)
    assert not (files / "ctx" / "abs-link").exists()
    assert _files_with_secret(files) == []
    _untouched(out)
    assert _leftovers(env) == []  # failed or not: no mount, snapshot, cgroup left


def test_destination_through_an_image_symlink_stays_in_the_rootfs(env: Env, tmp_path: Path) -> None:
    out = _outside(tmp_path)
    text = (
        f"FROM {IMAGE}\nCOPY links/ /\n"
        "COPY data.txt /esc/pwned\nCOPY data.txt /esc-file\nCOPY data.txt /esc/sub/\n"
        "ADD layer.tar /esc/\n"
    )
    ctx = _ctx(tmp_path, text)
    (ctx / "links").mkdir()
    os.symlink(out, ctx / "links" / "esc")
    os.symlink(out / "victim", ctx / "links" / "esc-file")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        _add(tf, "from-tar", b"tar data\n")
    (ctx / "layer.tar").write_bytes(buf.getvalue())
    files = tmp_path / "files"
    proc = _build(env, ctx, files)
    assert proc.returncode == 0, proc.stderr
    inside = files / str(out).lstrip("/")
    assert (inside / "pwned").read_text() == "context data\n"
    assert (inside / "victim").read_text() == "context data\n"
    assert (inside / "sub" / "data.txt").read_text() == "context data\n"
    assert (inside / "from-tar").read_text() == "tar data\n"
    _untouched(out)
    assert _leftovers(env) == []  # failed or not: no mount, snapshot, cgroup left


EVIL = {
    "dotdot": [("../../../../../../..OUT/dotdot", {})],
    "absolute": [("OUT/absolute", {})],
    "through-abs-symlink": [
        ("link", {"type": tarfile.SYMTYPE, "linkname": "OUT"}),
        ("link/through", {}),
    ],
    "through-rel-symlink": [
        ("rel", {"type": tarfile.SYMTYPE, "linkname": "REL"}),
        ("rel/victim", {}),
    ],
    "hardlink-out": [("hard", {"type": tarfile.LNKTYPE, "linkname": "../../../..OUT/victim"})],
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_add_tar_members_cannot_escape(env: Env, tmp_path: Path, case: str) -> None:
    out = _outside(tmp_path)
    ctx = _ctx(tmp_path, f"FROM {IMAGE}\nADD evil.tar /unpacked/\n")
    rel = os.path.relpath(out, "/unpacked")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        _add(tf, "ok", b"fine\n")
        for name, kw in EVIL[case]:
            kw = {k: (v.replace("OUT", str(out)).replace("REL", rel) if isinstance(v, str) else v)
                  for k, v in kw.items()}  # fmt: skip
            _add(tf, name.replace("OUT", str(out)), b"pwned\n", **kw)
    (ctx / "evil.tar").write_bytes(buf.getvalue())
    files = tmp_path / "files"
    proc = _build(env, ctx, files)
    # refused by the confined unpack of storage/apply.py, one line naming the tar
    assert proc.returncode != 0, proc.stdout
    assert "evil.tar: cannot unpack" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not files.exists()
    _untouched(out)
    assert _leftovers(env) == []  # failed or not: no mount, snapshot, cgroup left


def test_add_never_unpacks_a_host_tar_through_a_context_symlink(env: Env, tmp_path: Path) -> None:
    out = _outside(tmp_path)
    ctx = _ctx(tmp_path, f"FROM {IMAGE}\nADD dir-link/host.tar /h/\n")
    os.symlink(out, ctx / "dir-link")
    files = tmp_path / "files"
    proc = _build(env, ctx, files)
    assert proc.returncode != 0, proc.stdout
    assert "dir-link/host.tar" in proc.stderr
    assert not files.exists() or _files_with_secret(files) == []
    _untouched(out)
    assert _leftovers(env) == []  # failed or not: no mount, snapshot, cgroup left


def test_copy_from_stage_cannot_reach_the_host(env: Env, tmp_path: Path) -> None:
    out = _outside(tmp_path)
    text = (
        f"FROM {IMAGE} AS a\nCOPY links/ /\n"
        f"FROM {IMAGE}\nCOPY --from=a /abs-link /got1\nCOPY --from=a /dir-link/secret /got2\n"
        f"COPY --from=a ../../../../../../../..{out}/secret /got3\n"
    )
    ctx = _ctx(tmp_path, text)
    (ctx / "links").mkdir()
    os.symlink(out / "secret", ctx / "links" / "abs-link")
    os.symlink(out, ctx / "links" / "dir-link")
    files = tmp_path / "files"
    proc = _build(env, ctx, files)
    assert proc.returncode != 0
    assert not files.exists() or _files_with_secret(files) == []
    _untouched(out)
    assert _leftovers(env) == []  # failed or not: no mount, snapshot, cgroup left


def test_context_tar_on_stdin_cannot_write_outside(env: Env, tmp_path: Path) -> None:
    out = _outside(tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        _add(tf, "Dockerfile", f"FROM {IMAGE}\nCOPY data.txt /data.txt\n".encode())
        _add(tf, "data.txt", b"context data\n")
        # a symlink to the host, then a directory entry of the same name (chmod)
        _add(tf, "d", type=tarfile.SYMTYPE, linkname=str(out))
        _add(tf, "d", type=tarfile.DIRTYPE, mode=0o777)
        # a symlink where the extractor would put its temporary file
        _add(tf, "f.portside-tmp", type=tarfile.SYMTYPE, linkname=str(out / "victim"))
        _add(tf, "f", b"pwned\n")
        _add(tf, "../../escape", b"pwned\n")
        _add(tf, "e", type=tarfile.SYMTYPE, linkname=str(out))
        _add(tf, "e/through", b"pwned\n")
    proc = subprocess.run(
        [
            PORTSIDE,
            "build", "-q", "-o", f"type=local,dest={tmp_path}/files", "-",
        ],
        input=buf.getvalue(),
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert not (tmp_path.parent / "escape").exists()
    assert not (tmp_path / "escape").exists()
    assert proc.returncode != 0 or (tmp_path / "files" / "data.txt").exists()
    _untouched(out)
    assert _leftovers(env) == []  # failed or not: no mount, snapshot, cgroup left


@pytest.mark.parametrize("source", ["../outside", "ABS", "dir-link", "dir-link/secret"])
def test_run_bind_mount_source_stays_in_the_context(env: Env, tmp_path: Path, source: str) -> None:
    out = _outside(tmp_path)
    source = source.replace("ABS", str(out))
    text = (
        f"FROM {IMAGE}\nRUN --mount=type=bind,source={source},target=/m,rw=true "
        "cat /m/secret /m > /got 2>/dev/null; touch /m/written 2>/dev/null; true\n"
    )
    ctx = _ctx(tmp_path, text)
    os.symlink(out, ctx / "dir-link")
    files = tmp_path / "files"
    proc = _build(env, ctx, files)
    if proc.returncode != 0:  # refused, or resolved inside the context where it is missing
        assert "outside the build context" in proc.stderr or "not found" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not files.exists() or _files_with_secret(files) == []
    _untouched(out)
    assert _leftovers(env) == []


@pytest.mark.parametrize(
    "step",
    ["COPY link /got", "COPY dir-link/ /got/", "COPY dir-link/key /got",
     "RUN --mount=type=bind,source=link,target=/m cat /m > /got",
     "RUN --mount=type=bind,source=dir-link,target=/m cat /m/key > /got"],
)  # fmt: skip
def test_an_ignored_file_is_not_reached_through_a_symlink(
    env: Env, tmp_path: Path, step: str
) -> None:
    ctx = _ctx(tmp_path, f"FROM {IMAGE}\n{step}\n")
    (ctx / "private").mkdir()
    (ctx / "private" / "key").write_text(SECRET)
    (ctx / ".containerignore").write_text("private\n")
    os.symlink("private/key", ctx / "link")
    os.symlink("private", ctx / "dir-link")
    files = tmp_path / "files"
    proc = _build(env, ctx, files)
    assert proc.returncode != 0, proc.stdout
    assert "excluded by .containerignore" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not files.exists()
    assert _leftovers(env) == []

"""Pulls through a faulty proxy in front of the real registry.

The proxy (threads, 127.0.0.1) forwards every request to docker-registry and can
flip one byte of a blob, cut a blob download midway, slow a blob down, and
counts what it served; so corruption, resume, crash recovery and layer reuse
are tested against the real registry and the real `portside` command.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from portside.content import ContentStore
from tests.fixtures.registry import Registry

PORTSIDE = [sys.executable, "-m", "portside.cli"]


class FaultProxy:
    """An HTTP forwarder to `upstream` with switchable faults on blob GETs."""

    def __init__(self, upstream: str, bind: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range
        self.flip_blob: str | None = None  # digest whose body gets one byte flipped
        self.cut_blob: str | None = None  # digest whose first full GET is cut midway
        self.slow_blob: str | None = None  # digest served slowly
        self.fail_503: int = 0  # answer this many blob GETs with 503 first
        self.manifest_type: str | None = None  # replace manifests' Content-Type
        self.fail_upload_503: int = 0  # answer this many upload PUTs with 503
        self._cut_done = False
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.requests.append((self.command, self.path, self.headers.get("Range")))
                    unavailable = proxy.fail_503 > 0 and "/blobs/sha256:" in self.path
                    if unavailable:
                        proxy.fail_503 -= 1
                    if (
                        self.command == "PUT"
                        and "/blobs/uploads/" in self.path
                        and proxy.fail_upload_503 > 0
                    ):
                        proxy.fail_upload_503 -= 1
                        unavailable = True
                if unavailable:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                # Host is kept: the registry builds upload Locations from it, so they
                # point back at the proxy
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                digest = self.path.rsplit("/", 1)[-1] if "/blobs/sha256:" in self.path else None
                cut = False
                if self.command == "GET" and digest and resp.status in (200, 206):
                    if digest == proxy.flip_blob:
                        data = bytes([data[0] ^ 0xFF]) + data[1:]
                    if digest == proxy.cut_blob and not proxy._cut_done:
                        proxy._cut_done = True
                        cut = True
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        if (
                            k.lower() == "content-type"
                            and proxy.manifest_type
                            and "/manifests/" in self.path
                        ):
                            v = proxy.manifest_type
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if cut:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if digest and digest == proxy.slow_blob:
                    for i in range(0, len(data), 16384):
                        self.wfile.write(data[i : i + 16384])
                        self.wfile.flush()
                        time.sleep(0.05)
                    return
                self.wfile.write(data)

            do_GET = _forward
            do_HEAD = _forward
            do_PUT = _forward
            do_POST = _forward
            do_PATCH = _forward
            do_DELETE = _forward

        self.server = ThreadingHTTPServer((bind, 0), Handler)
        self.server.daemon_threads = True
        self.host = f"{bind}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def blob_gets(self) -> list[tuple[str, str | None]]:
        return [
            (p.rsplit("/", 1)[-1], r)
            for m, p, r in self.requests
            if m == "GET" and "/blobs/sha256:" in p
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    p = FaultProxy(registry.host)
    try:
        yield p
    finally:
        p.close()


def _manifest(layout: Path) -> dict[str, object]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    return json.loads((layout / "blobs" / "sha256" / digest[7:]).read_bytes())


def _layers(layout: Path) -> list[str]:
    return [layer["digest"] for layer in _manifest(layout)["layers"]]  # type: ignore[index]


def portside(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*PORTSIDE, *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"portside {' '.join(args)} failed: {r.stderr}")
    return r


def _store() -> ContentStore:
    return ContentStore(Path(os.environ["PORTSIDE_ROOT"]) / "content")


@pytest.mark.timeout(120)
def test_flipped_byte_fails_naming_digest_and_stores_nothing(
    proxy: FaultProxy, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    layer = _layers(fixture_layouts["multilayer-gzip"])[1]
    proxy.flip_blob = layer
    ref = pushed_images["multilayer-gzip"].split("/", 1)[1]
    r = portside("pull", f"{proxy.host}/{ref}", check=False)
    assert r.returncode == 125
    lines = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and layer in lines[0] and "mismatch" in lines[0]
    # nothing of the failed pull is left: no image, no blob (not even the good ones)
    assert portside("images", "-q").stdout == ""
    assert list(_store().blobs()) == []
    assert portside("system", "check").returncode == 0
    # a clean pull afterwards works
    proxy.flip_blob = None
    portside("pull", "-q", f"{proxy.host}/{ref}")
    assert _store().has(layer)


@pytest.mark.timeout(120)
def test_cut_connection_resumes_with_range(
    proxy: FaultProxy, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    layout = fixture_layouts["multilayer-none"]
    big = max(_manifest(layout)["layers"], key=lambda d: d["size"])  # type: ignore[arg-type]
    proxy.cut_blob = big["digest"]
    ref = pushed_images["multilayer-none"].split("/", 1)[1]
    out = portside("pull", "-q", f"{proxy.host}/{ref}").stdout.strip()
    assert len(out) == 64
    gets = [r for d, r in proxy.blob_gets() if d == big["digest"]]
    assert gets[0] is None and gets[1] is not None and gets[1].startswith("bytes=")
    assert 0 < int(gets[1][6:].rstrip("-")) <= big["size"] // 2
    assert _store().verify_all() == []


@pytest.mark.timeout(60)
def test_schema1_manifest_refused_in_one_line(
    proxy: FaultProxy, pushed_images: dict[str, str]
) -> None:
    proxy.manifest_type = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    ref = pushed_images["busybox"].split("/", 1)[1]
    r = portside("pull", f"{proxy.host}/{ref}", check=False)
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1 and "schema 1" in r.stderr
    assert list(_store().blobs()) == []


@pytest.mark.timeout(120)
def test_503_answers_are_retried(proxy: FaultProxy, pushed_images: dict[str, str]) -> None:
    proxy.fail_503 = 2
    ref = pushed_images["busybox"].split("/", 1)[1]
    portside("pull", "-q", f"{proxy.host}/{ref}")
    assert proxy.fail_503 == 0
    assert _store().verify_all() == []


@pytest.mark.timeout(120)
def test_failed_upload_is_retried(proxy: FaultProxy, pushed_images: dict[str, str]) -> None:
    portside("pull", "-q", pushed_images["multilayer-gzip"])
    proxy.fail_upload_503 = 2
    target = f"{proxy.host}/retry/ml:v1"
    portside("push", "-q", pushed_images["multilayer-gzip"], target)
    assert proxy.fail_upload_503 == 0
    puts = [p for m, p, _ in proxy.requests if m == "PUT" and "/blobs/uploads/" in p]
    assert len(puts) >= 2 + 4  # two refused, then config and three layers


@pytest.mark.timeout(120)
def test_chunked_upload_sends_patches(
    proxy: FaultProxy, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    portside("pull", "-q", pushed_images["busybox"])
    target = f"{proxy.host}/chunked/bb:v1"
    portside("push", "-q", "--chunk-size", "262144", pushed_images["busybox"], target)
    patches = [p for m, p, _ in proxy.requests if m == "PATCH"]
    layer = _manifest(fixture_layouts["busybox"])["layers"][0]  # type: ignore[index]
    assert len(patches) >= layer["size"] // 262144
    r = portside("--root", os.environ["PORTSIDE_ROOT"] + "2", "pull", "-q", target)
    assert len(r.stdout.strip()) == 64


@pytest.mark.timeout(120)
def test_second_image_fetches_only_new_layers(
    proxy: FaultProxy, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    base = _layers(fixture_layouts["busybox"])
    top = _layers(fixture_layouts["multilayer-gzip"])
    assert base[0] == top[0]  # the fixtures share busybox as the base layer
    portside("pull", "-q", f"{proxy.host}/{pushed_images['busybox'].split('/', 1)[1]}")
    before = len(proxy.blob_gets())
    portside("pull", "-q", f"{proxy.host}/{pushed_images['multilayer-gzip'].split('/', 1)[1]}")
    fetched = [d for d, _ in proxy.blob_gets()[before:]]
    assert base[0] not in fetched
    assert set(top[1:]) <= set(fetched)


@pytest.mark.timeout(180)
def test_sigkill_mid_pull_then_check_and_resume(
    proxy: FaultProxy, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    layout = fixture_layouts["multilayer-none"]
    big = max(_manifest(layout)["layers"], key=lambda d: d["size"])  # type: ignore[arg-type]
    proxy.slow_blob = big["digest"]
    ref = f"{proxy.host}/{pushed_images['multilayer-none'].split('/', 1)[1]}"
    proc = subprocess.Popen(
        [*PORTSIDE, "pull", "-q", "--max-parallel", "1", ref],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = _store()
    ref_name = f"blob-{big['digest']}"
    deadline = time.monotonic() + 60
    while store.ingest_offset(ref_name) < 64 * 1024 and time.monotonic() < deadline:
        assert proc.poll() is None, "pull finished before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = store.ingest_offset(ref_name)
    assert 0 < partial < big["size"]
    check = portside("system", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert portside("images", "-q").stdout == ""
    proxy.slow_blob = None
    portside("pull", "-q", ref)
    ranges = [r for d, r in proxy.blob_gets() if d == big["digest"] and r]
    assert ranges and int(ranges[-1][6:].rstrip("-")) >= partial
    assert store.verify_all() == []
    assert store.ingest_offset(ref_name) == 0


@pytest.mark.timeout(180)
def test_eight_concurrent_pulls_store_each_blob_once(
    registry: Registry, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    ref = pushed_images["multilayer-gzip"]
    procs = [
        subprocess.Popen(
            [*PORTSIDE, "pull", "-q", ref],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=150) for p in procs]
    # status, stdout (was the ID printed: did it fail after the pull?) and stderr of each
    report = [(p.returncode, o, e) for p, (o, e) in zip(procs, outs, strict=True)]
    assert [p.returncode for p in procs] == [0] * 8, report
    assert len({o.strip() for o, _ in outs}) == 1
    manifest = _manifest(fixture_layouts["multilayer-gzip"])
    expected = {manifest["config"]["digest"], *_layers(fixture_layouts["multilayer-gzip"])}  # type: ignore[index]
    store = _store()
    blobs = {str(d) for d, _ in store.blobs()}
    assert expected <= blobs
    assert len(blobs) == len(expected) + 1  # plus the manifest itself, nothing twice
    assert [p for p in store.ingest_dir.iterdir() if p.is_dir()] == []
    assert store.verify_all() == []
    assert len(portside("images", "-q").stdout.split()) == 1


def _non_loopback_ip() -> str | None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a source address
            ip = str(s.getsockname()[0])
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


@pytest.mark.timeout(60)
def test_plain_http_only_for_loopback_unless_tls_verify_false(
    registry: Registry, pushed_images: dict[str, str]
) -> None:
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve plain HTTP on")
    proxy = FaultProxy(registry.host, bind=ip)
    try:
        ref = f"{proxy.host}/{pushed_images['busybox'].split('/', 1)[1]}"
        r = portside("pull", "-q", ref, check=False)
        assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
        assert proxy.requests == []  # HTTPS was tried: the plain-HTTP proxy saw no request
        out = portside("pull", "-q", "--tls-verify=false", ref).stdout.strip()
        assert len(out) == 64
    finally:
        proxy.close()

"""A real docker-registry in token-auth mode, with a token server run by the test.

The token server issues RS256 JWTs signed with a throwaway key (openssl CLI),
whose self-signed certificate is the registry's `rootcertbundle`; only
alice:secret gets access. Pull, push, login and a wrong password are tested
through the real `portside` command.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from portside.images.copy import CopyOptions, copy
from portside.images.store import ImageStore
from portside.images.transports.local import LocalDestination
from portside.images.transports.oci_layout import OciLayoutSource
from tests.fixtures.registry import Registry, start_registry

PORTSIDE = [sys.executable, "-m", "portside.cli"]
USER, PASSWORD = "alice", "secret"
SERVICE, ISSUER = "portside-test-registry", "portside-test-issuer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_kid(der_public_key: bytes) -> str:
    """The key ID docker's libtrust derives from a public key (registry looks keys up by it)."""
    import hashlib

    digest = hashlib.sha256(der_public_key).digest()[:30]
    s = base64.b32encode(digest).decode().rstrip("=")
    return ":".join(s[i : i + 4] for i in range(0, 48, 4))


@dataclass
class TokenServer:
    url: str
    issued: list[str]
    refused: list[str]
    server: ThreadingHTTPServer


def _make_key(work: Path) -> tuple[Path, Path, bytes, str]:
    key, cert = work / "key.pem", work / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=portside-token-test"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    der_cert = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    pub = subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key, cert, der_cert, libtrust_kid(pub)


def _sign(key: Path, data: bytes) -> bytes:
    return subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key)],
        input=data,
        check=True,
        capture_output=True,
    ).stdout


def start_token_server(key: Path, der_cert: bytes, kid: str) -> TokenServer:
    issued: list[str] = []
    refused: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            q = parse_qs(urlparse(self.path).query)
            auth = self.headers.get("Authorization", "")
            account = None
            if auth.startswith("Basic "):
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                if (user, pw) != (USER, PASSWORD):
                    refused.append(user)
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"details":"invalid credentials"}')
                    return
                account = user
            access = []
            for scope in q.get("scope", []):
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind == "repository" and account is not None:
                    access.append(
                        {"type": "repository", "name": name, "actions": actions.split(",")}
                    )
            now = int(time.time())
            header = {"typ": "JWT", "alg": "RS256", "kid": kid,
                      "x5c": [base64.b64encode(der_cert).decode()]}  # fmt: skip
            claims = {
                "iss": ISSUER,
                "sub": account or "",
                "aud": SERVICE,
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": uuid.uuid4().hex,
                "access": access,
            }
            signing_input = (
                b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
            )
            token = signing_input + "." + b64url(_sign(key, signing_input.encode()))
            issued.append(" ".join(q.get("scope", [])))
            body = json.dumps({"token": token, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return TokenServer(
        f"http://127.0.0.1:{server.server_address[1]}/token", issued, refused, server
    )


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, TokenServer]]:
    work = tmp_path_factory.mktemp("token-registry")
    key, cert, der_cert, kid = _make_key(work)
    tokens = start_token_server(key, der_cert, kid)
    extra = (
        "auth:\n  token:\n"
        f"    realm: {tokens.url}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
        f"    rootcertbundle: {cert}\n"
    )
    reg = start_registry(work, extra)
    try:
        yield reg, tokens
    finally:
        reg.stop()
        tokens.server.shutdown()
        tokens.server.server_close()


def portside(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PORTSIDE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.timeout(120)
def test_token_auth_push_pull_login_and_wrong_password(
    token_registry: tuple[Registry, TokenServer],
    fixture_layouts: dict[str, Path],
    tmp_path: Path,
) -> None:
    reg, tokens = token_registry
    store = ImageStore(Path(os.environ["PORTSIDE_ROOT"]))
    dest = LocalDestination(store, names=["localhost/auth:1"])
    try:
        copy(OciLayoutSource.from_dir(fixture_layouts["busybox"], "latest"), dest, CopyOptions())
    finally:
        dest.close()
    target = f"{reg.host}/private/busybox:v1"
    authfile = {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}

    # without credentials: refused, one line
    r = portside("push", "-q", "localhost/auth:1", target, env=authfile)
    assert r.returncode == 125 and "unauthorized" in r.stderr.lower(), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    # with the right credentials: pushed, with one token per scope set
    r = portside("push", "-q", "--creds", f"{USER}:{PASSWORD}", "localhost/auth:1", target)
    assert r.returncode == 0, r.stderr
    assert 1 <= len(tokens.issued) <= 4

    # a wrong password: one line saying unauthorized, nothing stored
    other = tmp_path / "other-root"
    r = portside("--root", str(other), "pull", "--creds", f"{USER}:wrong", target, env=authfile)
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and "unauthorized" in r.stderr.lower()
    assert tokens.refused == [USER]
    assert ImageStore(other).images() == []
    assert list(ImageStore(other).content.blobs()) == []

    # login writes the auth file (podman's format); pull then needs no flag
    r = portside("login", "-u", USER, "-p", "wrong", reg.host, env=authfile)
    assert r.returncode == 125 and not (tmp_path / "auth.json").exists()
    r = portside("login", "-u", USER, "-p", PASSWORD, reg.host, env=authfile)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "auth.json").read_text())
    assert base64.b64decode(saved["auths"][reg.host]["auth"]).decode() == f"{USER}:{PASSWORD}"
    r = portside("--root", str(other), "pull", "-q", target, env=authfile)
    assert r.returncode == 0, r.stderr
    assert (
        ImageStore(other).get(target).manifest_digest
        == store.get("localhost/auth:1").manifest_digest
    )
    r = portside("image", "tags", reg.host + "/private/busybox", env=authfile)
    assert r.stdout.split() == ["v1"]
    r = portside("logout", reg.host, env=authfile)
    assert r.returncode == 0
    assert json.loads((tmp_path / "auth.json").read_text())["auths"] == {}


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry with `auth: htpasswd:` (bcrypt from glibc's crypt, no apache2-utils)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))
    work = tmp_path_factory.mktemp("basic-registry")
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"{USER}:{hashed}\n")
    reg = start_registry(work, f"auth:\n  htpasswd:\n    realm: portside\n    path: {htpasswd}\n")
    try:
        yield reg
    finally:
        reg.stop()


@pytest.mark.timeout(120)
def test_basic_auth_push_pull_and_wrong_password(
    basic_registry: Registry, fixture_layouts: dict[str, Path], tmp_path: Path
) -> None:
    store = ImageStore(Path(os.environ["PORTSIDE_ROOT"]))
    dest = LocalDestination(store, names=["localhost/basic:1"])
    try:
        copy(OciLayoutSource.from_dir(fixture_layouts["busybox"], "latest"), dest, CopyOptions())
    finally:
        dest.close()
    target = f"{basic_registry.host}/basic/busybox:v1"
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    r = portside("push", "-q", "localhost/basic:1", target, env=env)
    assert r.returncode == 125 and "unauthorized" in r.stderr.lower(), r.stderr
    r = portside("push", "-q", "--creds", f"{USER}:{PASSWORD}", "localhost/basic:1", target)
    assert r.returncode == 0, r.stderr
    other = tmp_path / "other"
    r = portside("--root", str(other), "pull", "--creds", f"{USER}:nope", target, env=env)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
    assert "unauthorized" in r.stderr.lower()
    assert list(ImageStore(other).content.blobs()) == []
    r = portside("--root", str(other), "pull", "-q", "--creds", f"{USER}:{PASSWORD}", target)
    assert r.returncode == 0, r.stderr

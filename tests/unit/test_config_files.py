"""registries.conf v2 and auth files, as podman and docker write them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from portside import config
from portside.config import parse_registries_conf
from portside.errors import ConfigError, RegistryError
from portside.registry.resolver import Resolver


def test_registries_conf_v2() -> None:
    conf = parse_registries_conf(
        """
unqualified-search-registries = ["quay.io", "docker.io"]
[[registry]]
prefix = "example.com/foo"
location = "mirror.internal:5000/foo"
insecure = true
[[registry.mirror]]
location = "fast.internal/foo"
[[registry]]
location = "bad.example"
blocked = true
[aliases]
"web" = "docker.io/library/nginx"
"""
    )
    r = Resolver(conf)
    assert [str(c) for c in r.candidates("alpine")] == [
        "quay.io/alpine:latest",
        "docker.io/library/alpine:latest",
    ]
    assert [str(c) for c in r.candidates("web:1")] == ["docker.io/library/nginx:1"]
    eps = r.endpoints(r.qualify("example.com/foo/bar:1"))
    assert [(e.domain, e.repo, e.mirror) for e in eps] == [
        ("fast.internal", "foo/bar", True),
        ("mirror.internal:5000", "foo/bar", False),
    ]
    assert eps[1].insecure
    with pytest.raises(RegistryError, match="blocked"):
        r.endpoints(r.qualify("bad.example/x"))


def test_v1_format_refused() -> None:
    with pytest.raises(ConfigError, match="v1"):
        parse_registries_conf('[registries.search]\nregistries = ["docker.io"]\n')


def test_login_file_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    path = config.store_credentials("reg.example:5000", "alice", "s3cret:x")
    assert path == tmp_path / "xdg" / "containers" / "auth.json"
    doc = json.loads(path.read_text())
    assert base64.b64decode(doc["auths"]["reg.example:5000"]["auth"]) == b"alice:s3cret:x"
    assert config.lookup_credentials("reg.example:5000") == ("alice", "s3cret:x")
    assert config.remove_credentials("reg.example:5000") == ["reg.example:5000"]
    assert config.lookup_credentials("reg.example:5000") is None


def test_docker_config_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    docker = tmp_path / "home" / ".docker" / "config.json"
    docker.parent.mkdir(parents=True)
    token = base64.b64encode(b"bob:pw").decode()
    docker.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": token}}}))
    assert config.lookup_credentials("docker.io") == ("bob", "pw")


def test_root_without_xdg_uses_run_containers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    import os

    assert config.auth_file_path() == Path(f"/run/containers/{os.getuid()}/auth.json")

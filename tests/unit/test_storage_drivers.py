"""Choosing a storage driver, and mount specs turned into mount(2) data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portside.errors import ConfigError
from portside.storage.drivers import choose_driver
from portside.storage.mounts import Mount


def test_explicit_env_and_config_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "probe.json").write_text(json.dumps({"overlay": True}))
    assert choose_driver(tmp_path) == "overlay"  # the cached probe
    config = tmp_path / "portside.toml"
    config.write_text('[storage]\ndriver = "vfs"\n')
    monkeypatch.setenv("PORTSIDE_CONFIG", str(config))
    assert choose_driver(tmp_path) == "vfs"
    monkeypatch.setenv("PORTSIDE_STORAGE_DRIVER", "overlay")
    assert choose_driver(tmp_path) == "overlay"
    assert choose_driver(tmp_path, "vfs") == "vfs"
    with pytest.raises(ConfigError, match="unknown storage driver 'zfs'"):
        choose_driver(tmp_path, "zfs")


def test_probe_result_is_kept(tmp_path: Path) -> None:
    (tmp_path / "probe.json").write_text(json.dumps({"overlay": False}))
    assert choose_driver(tmp_path) == "vfs"


def test_mount_options_split_into_flags_and_data() -> None:
    from portside.linux import libc

    m = Mount("overlay", "overlay", "", ("ro", "nodev", "lowerdir=/a:/b"))
    flags, data = m.flags_and_data()
    assert flags == libc.MS_RDONLY | libc.MS_NODEV
    assert data == "lowerdir=/a:/b"
    assert m.to_spec("/") == {
        "destination": "/",
        "type": "overlay",
        "source": "overlay",
        "options": ["ro", "nodev", "lowerdir=/a:/b"],
    }

"""GC (each `image prune` runs one) while a pull is in progress must not take what the
pull needs: leases and the GC lock keep its blobs until the image is committed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portside.content import ContentStore
from tests.fixtures.registry import Registry
from tests.integration.test_registry_faults import FaultProxy, _manifest

PORTSIDE = [sys.executable, "-m", "portside.cli"]


@pytest.mark.timeout(120)
def test_prune_during_a_slow_pull_keeps_its_blobs(
    registry: Registry, pushed_images: dict[str, str], fixture_layouts: dict[str, Path]
) -> None:
    layout = fixture_layouts["multilayer-none"]
    big = max(_manifest(layout)["layers"], key=lambda d: d["size"])  # type: ignore[arg-type]
    proxy = FaultProxy(registry.host)
    proxy.slow_blob = big["digest"]
    try:
        ref = f"{proxy.host}/{pushed_images['multilayer-none'].split('/', 1)[1]}"
        pull = subprocess.Popen(
            [*PORTSIDE, "pull", "-q", ref], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        prunes = 0
        while pull.poll() is None:
            r = subprocess.run(
                [*PORTSIDE, "image", "prune"], capture_output=True, text=True, timeout=60
            )
            assert r.returncode == 0, r.stderr
            prunes += 1
            time.sleep(0.05)
        _out, err = pull.communicate()
    finally:
        proxy.close()
    assert pull.returncode == 0, err
    assert prunes >= 1
    check = subprocess.run([*PORTSIDE, "system", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    store = ContentStore(Path(os.environ["PORTSIDE_ROOT"]) / "content")
    assert store.has(big["digest"])
    assert list(store.leases_dir.iterdir()) == []

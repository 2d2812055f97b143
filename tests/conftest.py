"""Fixtures shared by every test: private state roots, a real registry, images."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.registry import Registry, start_registry

SHARED = Path(__file__).resolve().parents[2] / "shared"
SPECS = SHARED / "specs"


@pytest.fixture(autouse=True)
def state_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """Every test gets its own state root and run root, never the defaults."""
    root = tmp_path / "root"
    runroot = tmp_path / "run"
    root.mkdir()
    runroot.mkdir()
    monkeypatch.setenv("PORTSIDE_ROOT", str(root))
    monkeypatch.setenv("PORTSIDE_RUNROOT", str(runroot))
    monkeypatch.setenv("PORTSIDE_CONFIG", str(tmp_path / "portside.toml"))
    yield root, runroot
    stop_monitor_zygotes(runroot)


def stop_monitor_zygotes(runroot: Path) -> None:
    """The engine leaves a warm monitor zygote in the run root (it exits when idle); stop
    the ones this test started, by the PID they wrote, checking it is still theirs."""
    for pid_file in runroot.glob("monitor-zygote-*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(runroot).encode() in cmdline:
                os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="session", autouse=True)
def engine_cgroup_parent() -> Iterator[None]:
    """The engine puts containers under a `/portside` cgroup parent (as podman's
    libpod_parent); remove that parent again where this session made it. rmdir only
    succeeds on an empty cgroup, so a leak inside it still shows."""
    before = set(Path("/sys/fs/cgroup").glob("*/portside"))
    yield
    for parent in sorted(set(Path("/sys/fs/cgroup").glob("*/portside")) - before):
        with contextlib.suppress(OSError):
            parent.rmdir()


# --- networking (issue 8): tests default to --network none ---------------------------------
@pytest.fixture(scope="session", autouse=True)
def default_network_none() -> Iterator[None]:
    """Without --network a container joins the bridge network `portside`, whose bridge and
    rules would be made in the namespace the engine runs in: for most tests the machine's
    real one. So tests default to `none` (only lo, as the engine gave before networking);
    a test that wants the default network gives the engine a host namespace of its own
    and unsets this (see tests/integration/test_network_engine.py)."""
    old = os.environ.get("PORTSIDE_DEFAULT_NETWORK")
    os.environ["PORTSIDE_DEFAULT_NETWORK"] = "none"
    yield
    if old is None:
        os.environ.pop("PORTSIDE_DEFAULT_NETWORK", None)
    else:
        os.environ["PORTSIDE_DEFAULT_NETWORK"] = old


# --- warm CLI (issue 6): the session's own, stopped at its end ------------------------------
@pytest.fixture(scope="session", autouse=True)
def warm_cli_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`portside` hands most calls to a warm pre-imported CLI (src/portside/cli/warm.py)
    that exits when idle; the session gets its own rather than the machine's, and stops
    it (by the PID it wrote, checking it is still that one) when the session ends."""
    old = os.environ.get("PORTSIDE_WARM_DIR")
    directory = tmp_path_factory.mktemp("warm") / "cli"
    os.environ["PORTSIDE_WARM_DIR"] = str(directory)
    yield
    if old is None:
        os.environ.pop("PORTSIDE_WARM_DIR", None)
    else:
        os.environ["PORTSIDE_WARM_DIR"] = old
    with contextlib.suppress(OSError, ValueError):
        pid = int((directory / "cli.pid").read_text())
        if str(directory).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Debian's docker-registry on a free 127.0.0.1 port with temporary storage."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


def need_root() -> None:
    """Tests marked `root` run only as root; anything else is a machine that lacks it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: this machine runs the tests unprivileged")


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"needs {name}, which is not installed on this machine")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Enforce the marker contract: `root` tests need euid 0."""
    if os.geteuid() == 0:
        return
    skip_root = pytest.mark.skip(reason="needs root (euid is not 0 on this machine)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip_root)


# --- fixture images (foundation: tests/fixtures/images.py) -------------------------------
FIXTURE_REPO = "portside-test"


@pytest.fixture(scope="session")
def fixture_layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """OCI layouts built once per session, tag `latest`: busybox, multilayer-{gzip,zstd,none},
    multiplatform. Treat them as read-only (copy one before changing it)."""
    from tests.fixtures.images import build_all

    return build_all(tmp_path_factory.mktemp("layouts"))


@pytest.fixture(scope="session")
def pushed_images(registry: Registry, fixture_layouts: dict[str, Path]) -> dict[str, str]:
    """Each fixture layout pushed by skopeo, digests kept: name -> HOST/portside-test/NAME:latest.

    test_fixtures_registry.py checks that the registry serves the layouts' exact manifests."""
    from tests.fixtures.images import push_with_skopeo

    refs = {}
    for name, layout in fixture_layouts.items():
        ref = f"{registry.host}/{FIXTURE_REPO}/{name}:latest"
        push_with_skopeo(layout, ref)
        refs[name] = ref
    return refs

"""What a benchmark case is, and the paths and setup steps cases may rely on.

A case names the commands to time side by side: portside's (None until that part exists)
and one per peer tool. `run.py` times all of a case's commands in one hyperfine invocation,
so portside and its peers see the same machine conditions, and reports ratios of medians;
a case marked `interleaved` is timed in rounds instead (time_interleaved).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCH = REPO.parent / "shared" / "bench"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/peers"))
WORK = PEERS_DIR / "portside-bench"  # scratch of our cases; the peers' scripts own the rest
RESULTS = REPO / "benchmarks" / "results"
REG = "127.0.0.1:5000"  # the peers' registry (shared/bench/registry.sh)
PORTSIDE = str(REPO / ".venv" / "bin" / "portside")
PORTSIDE_RUNTIME = str(REPO / ".venv" / "bin" / "portside-runtime")
# portside's state for benchmarks: private, so a benchmark never touches /var/lib/portside
PORTSIDE_ROOT = WORK / "portside-root"
PORTSIDE_RUNROOT = WORK / "portside-run"

BUSYBOX_BUNDLE = WORK / "bundle-busybox"  # rootfs + config.json running /bin/true
OCI_DEBIAN = WORK / "oci-debian"  # layout with tag bookworm
CONTAINER_PREFIX = "psb"  # ids of the containers the runtime cases create
# in a command, replaced by a new container id for every run (bash's $RANDOM under hyperfine)
RUN_ID = f"{CONTAINER_PREFIX}$RANDOM$RANDOM"
PODMAN_LABEL = "portside.bench=1"

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


@dataclass
class Case:
    """One thing timed side by side.

    Commands run under `bash` (hyperfine --shell=bash, whose start-up hyperfine subtracts)
    unless `shell` is False (hyperfine -N). `prepare` runs before every timed run of every
    command (untimed); `prepare_for` overrides it per label ("portside" or a peer name).
    `needs` names setup steps in SETUPS; `view` "v1" runs the case in a private mount
    namespace without the cgroup2 mount, as crun on this hybrid-cgroup machine requires.
    `interleaved` times the commands in rounds, each command once per round in a shuffled
    order, without a shell (see time_interleaved): for commands of a few milliseconds,
    where a drift of the machine between hyperfine's one-command-after-another batches
    would move the ratio.
    """

    name: str
    peers: dict[str, str]
    portside: str | None = None
    needs: tuple[str, ...] = ()
    setup: str | None = None
    prepare: str | None = None
    prepare_for: dict[str, str] = field(default_factory=dict)
    cleanup: str | None = None
    runs: int = 10
    warmup: int = 2
    shell: bool = True
    view: str = "host"
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""
    interleaved: bool = False

    def commands(self) -> list[tuple[str, str]]:
        """(label, command) in timing order: portside first, then each peer."""
        pairs = [("portside", self.portside)] if self.portside else []
        return pairs + list(self.peers.items())

    def prepare_of(self, label: str) -> str | None:
        return self.prepare_for.get(label, self.prepare)

    def run_counts(self) -> tuple[int, int]:
        """(runs, warmup): BENCH_QUICK=1 cuts every case to 3 runs and 1 warmup."""
        if QUICK:
            return 3, min(self.warmup, 1)
        runs = int(os.environ.get("BENCH_RUNS", "0")) or self.runs
        return runs, self.warmup


def time_interleaved(
    case: Case, rounds: int, warmup: int = 0, env: dict[str, str] | None = None
) -> dict[str, list[float]]:
    """Wall times of each command of `case` over `rounds` rounds (after `warmup` untimed
    ones): every round runs each command once, in a new shuffled order, so a drift of the
    machine hits them alike. Commands are split with shlex and run without a shell, in
    `env` (else ours), each RUN_ID a new container id. With the v1 view the rounds run in a
    forked child that hides the cgroup2 mount in its own mount namespace. Raises
    RuntimeError, naming the command, when one fails."""
    commands = case.commands()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            if case.view == "v1":
                _hide_cgroup2()
            times: dict[str, list[float]] = {label: [] for label, _ in commands}
            for n in range(warmup + rounds):
                order = list(commands)
                random.shuffle(order)
                for label, command in order:
                    elapsed = _time_once(label, command, env)
                    if n >= warmup:
                        times[label].append(elapsed)
            os.write(w, json.dumps(times).encode())
        except BaseException as err:  # reported by the parent
            os.write(w, json.dumps({"error": str(err)}).encode())
            code = 1
        os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 1 << 16):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"error": "the timing process died"}')
    if "error" in result:
        raise RuntimeError(str(result["error"]))
    return {label: [float(t) for t in values] for label, values in result.items()}


def _time_once(label: str, command: str, env: dict[str, str] | None) -> float:
    argv = shlex.split(command.replace(RUN_ID, f"{CONTAINER_PREFIX}{random.randrange(1 << 40)}"))
    t0 = time.perf_counter()
    done = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{label} failed ({done.returncode}): {done.stderr.decode()[-300:]}")
    return elapsed


def _hide_cgroup2() -> None:
    """The v1 view in this (forked) process: a private mount namespace without the cgroup2
    mount, as run.py makes with unshare(1) for crun."""
    sys.path.insert(0, str(REPO / "src"))
    from portside.linux import libc

    libc.unshare(libc.CLONE_NEWNS)
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
    if os.path.ismount("/sys/fs/cgroup/unified"):
        libc.umount2("/sys/fs/cgroup/unified")


# ---------------------------------------------------------------- setup steps


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def sh(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=1800
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr[-1500:]}")
    return result.stdout


@dataclass
class Session:
    """What setup steps did, so the run can undo it: started processes, extra env."""

    started_registry: bool = False
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # need -> env additions
    done: set[str] = field(default_factory=set)


def registry_answers() -> bool:
    try:
        with urllib.request.urlopen(f"http://{REG}/v2/", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def need_registry(session: Session) -> None:
    """The peers' registry on 127.0.0.1:5000; started (and later stopped) only if absent."""
    if registry_answers():
        return
    log(f"starting the peers' registry ({SHARED_BENCH / 'registry.sh'} start)")
    sh(["bash", str(SHARED_BENCH / "registry.sh"), "start"])
    session.started_registry = True


def has_image(repo: str, tag: str) -> bool:
    request = urllib.request.Request(
        f"http://{REG}/v2/{repo}/manifests/{tag}",
        method="HEAD",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def need_peer_images(session: Session) -> None:
    """busybox, debian and layered in the registry, built by shared/bench/build-images.sh."""
    need_registry(session)
    wanted = [("busybox", "latest"), ("debian", "bookworm"), ("layered", "latest")]
    if all(has_image(repo, tag) for repo, tag in wanted):
        return
    if shutil.which("debootstrap") is None:
        log("installing debootstrap (build-images.sh needs it)")
        sh(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    (PEERS_DIR / "logs").mkdir(parents=True, exist_ok=True)
    log("building the peers' test images with build-images.sh (debootstrap: a few minutes)")
    started = time.monotonic()
    sh(["bash", str(SHARED_BENCH / "build-images.sh")], cwd=PEERS_DIR)
    log(f"images built in {time.monotonic() - started:.0f} s")


def need_busybox_bundle(session: Session) -> None:
    """A bundle of the registry's busybox running /bin/true, made as runtimes.sh makes its."""
    need_peer_images(session)
    config = BUSYBOX_BUNDLE / "config.json"
    if config.exists() and json.loads(config.read_text())["process"]["args"] == ["/bin/true"]:
        return
    WORK.mkdir(parents=True, exist_ok=True)
    layout = WORK / "oci-busybox"
    shutil.rmtree(layout, ignore_errors=True)
    shutil.rmtree(BUSYBOX_BUNDLE, ignore_errors=True)
    sh(["skopeo", "copy", "-q", "--src-tls-verify=false",
        f"docker://{REG}/busybox:latest", f"oci:{layout}:latest"])  # fmt: skip
    sh(["umoci", "unpack", "--image", f"{layout}:latest", str(BUSYBOX_BUNDLE)])
    config.unlink()
    sh(["runc", "spec"], cwd=BUSYBOX_BUNDLE)
    spec = json.loads(config.read_text())
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    config.write_text(json.dumps(spec, indent=2))


def need_oci_debian(session: Session) -> None:
    """debian:bookworm copied from the registry to an OCI layout, for unpack cases."""
    need_peer_images(session)
    if (OCI_DEBIAN / "index.json").exists():
        return
    WORK.mkdir(parents=True, exist_ok=True)
    sh(["skopeo", "copy", "-q", "--src-tls-verify=false",
        f"docker://{REG}/debian:bookworm", f"oci:{OCI_DEBIAN}:bookworm"])  # fmt: skip


def need_podman(session: Session) -> None:
    """podman-env.sh's private containers.conf/storage.conf, with busybox pulled into it."""
    need_peer_images(session)
    script = SHARED_BENCH / "podman-env.sh"
    out = sh(["bash", "-c", f'source "{script}" >/dev/null && env -0'])
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    extra = {k: env[k] for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF")}
    session.env["podman"] = extra
    sh(["podman", "pull", "-q", "--tls-verify=false", f"{REG}/busybox:latest"],
       env={**os.environ, **extra})  # fmt: skip


SETUPS: dict[str, Callable[[Session], None]] = {
    "registry": need_registry,
    "peer-images": need_peer_images,
    "busybox-bundle": need_busybox_bundle,
    "oci-debian": need_oci_debian,
    "podman": need_podman,
}


def teardown(session: Session) -> None:
    """Remove what the run left: runtime containers, podman containers, our registry."""
    for runtime in ("runc", "crun"):
        if shutil.which(runtime) is None:
            continue
        listing = subprocess.run([runtime, "list", "-q"], capture_output=True, text=True)
        for cid in listing.stdout.split():
            if cid.startswith(CONTAINER_PREFIX):
                subprocess.run([runtime, "delete", "-f", cid], capture_output=True)
    if "podman" in session.env:
        env = {**os.environ, **session.env["podman"]}
        ids = subprocess.run(
            ["podman", "ps", "-aq", "--filter", f"label={PODMAN_LABEL}"],
            capture_output=True, text=True, env=env,
        ).stdout.split()  # fmt: skip
        if ids:
            subprocess.run(["podman", "rm", "-f", *ids], capture_output=True, env=env)
    for scratch in WORK.glob("out-*"):
        shutil.rmtree(scratch, ignore_errors=True)
    # the engine cases leave a warm monitor zygote in our run root (it exits when idle)
    for pid_file in PORTSIDE_RUNROOT.glob("monitor-zygote-*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if str(PORTSIDE_RUNROOT).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
    # the engine cases' containers lived under the /portside cgroup parent; rmdir only
    # succeeds on an empty cgroup, so a real user's containers keep theirs
    for parent in Path("/sys/fs/cgroup").glob("*/portside"):
        with contextlib.suppress(OSError):
            parent.rmdir()
    if session.started_registry:
        log("stopping the registry this run started")
        subprocess.run(["bash", str(SHARED_BENCH / "registry.sh"), "stop"], capture_output=True)

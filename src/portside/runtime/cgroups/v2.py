"""cgroup v2: one directory in the unified hierarchy, written as runc's fs2 driver does."""

from __future__ import annotations

import os
import time

from portside.errors import CgroupError
from portside.runtime.cgroups import devices as dev
from portside.runtime.cgroups import fscommon as fs
from portside.runtime.cgroups import resources as res
from portside.runtime.cgroups.manager import CgroupManager
from portside.runtime.cgroups.paths import read_mounts, v2_path

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any

_FREEZE_TIMEOUT = 10.0


class V2Manager(CgroupManager):
    kind = "v2"

    def __init__(self, path: str, mountpoint: str, *, container_id: str = "") -> None:
        self.path = path
        self.mountpoint = mountpoint
        self.container_id = container_id

    @classmethod
    def for_container(
        cls, container_id: str, inner: str, mountpoint: str, own: dict[str, str]
    ) -> V2Manager:
        return cls(v2_path(mountpoint, inner, own), mountpoint, container_id=container_id)

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.container_id,
            "path": self.path,
            "mountpoint": self.mountpoint,
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> V2Manager:
        return cls(data["path"], data["mountpoint"], container_id=data.get("id", ""))

    def _is_real(self) -> bool:
        """False for a fake hierarchy (a plain directory tree standing in for cgroupfs)."""
        mounts = read_mounts()
        return mounts.unified is not None and os.path.realpath(self.mountpoint) == os.path.realpath(
            mounts.unified
        )

    # -- lifecycle ----------------------------------------------------------------

    def create(self) -> None:
        if not os.path.isdir(os.path.join(self.mountpoint)):
            raise CgroupError(f"cgroup2 is not mounted at {self.mountpoint}")
        rel = os.path.relpath(self.path, self.mountpoint)
        if rel.startswith(".."):
            raise CgroupError(f"cgroup {self.path} is outside {self.mountpoint}")
        made: list[str] = []
        try:
            current = self.mountpoint
            parts = [p for p in rel.split("/") if p and p != "."]
            for part in parts:
                # Each ancestor hands its controllers down to the next level.
                self._enable_controllers(current)
                current = os.path.join(current, part)
                if not os.path.isdir(current):
                    try:
                        os.mkdir(current, 0o755)
                    except FileExistsError:
                        pass
                    except OSError as exc:
                        raise CgroupError(
                            f"failed to create cgroup {current}: {exc.strerror}"
                        ) from exc
                    made.append(current)
        except BaseException:
            for d in reversed(made):
                try:  # noqa: SIM105 - contextlib costs start-up time
                    os.rmdir(d)
                except OSError:
                    pass
            raise

    @staticmethod
    def _enable_controllers(directory: str) -> None:
        available = (fs.read_optional(directory, "cgroup.controllers") or "").split()
        enabled = set((fs.read_optional(directory, "cgroup.subtree_control") or "").split())
        wanted = [c for c in available if c not in enabled]
        if not wanted:
            return
        try:
            fs.write(directory, "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        except CgroupError:
            # One at a time, so one refused controller (e.g. a threaded subtree's) does
            # not keep the others off.
            for c in wanted:
                try:
                    fs.write(directory, "cgroup.subtree_control", f"+{c}")
                except CgroupError:
                    continue

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def add_process(self, pid: int) -> None:
        try:
            fs.write_retry_eintr(self.path, "cgroup.procs", pid)
        except CgroupError as exc:
            raise CgroupError(f"cannot add pid {pid} to cgroup {self.path}: {exc}") from exc

    def pids(self) -> list[int]:
        if not os.path.isdir(self.path):
            return []
        return fs.all_pids(self.path)

    def destroy(self) -> None:
        if not os.path.isdir(self.path):
            return
        if self._is_real():
            # cgroup.kill (5.14+) takes the stragglers down in one write.
            fs.remove_tree(self.path)
        else:
            fs.remove_tree(self.path, rmdir=_rmdir_fake)

    # -- freezer --------------------------------------------------------------------

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        fs.write(self.path, "cgroup.freeze", "1" if frozen else "0")
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        while self._events().get("frozen", 0) != int(frozen):
            if time.monotonic() > deadline:
                if frozen:
                    fs.write(self.path, "cgroup.freeze", "0")
                raise CgroupError(
                    f"unable to {'freeze' if frozen else 'thaw'} {self.path}: timed out"
                )
            time.sleep(0.005)

    def is_frozen(self) -> bool:
        text = fs.read_optional(self.path, "cgroup.freeze")
        return bool(text and text.strip() == "1")

    def _events(self) -> dict[str, int]:
        return fs.read_flat_keyed(self.path, "cgroup.events")

    # -- resources ------------------------------------------------------------------

    def apply_resources(
        self, resources: dict[str, Any], *, linux_devices: list[dict[str, Any]] | None = None
    ) -> None:
        r = resources or {}
        if "devices" in r:
            self._set_devices(dev.container_rules(r.get("devices"), linux_devices))
        if r.get("memory"):
            self._set_memory(res.memory(r["memory"]))
        if r.get("cpu"):
            self._set_cpu(res.cpu(r["cpu"]))
        if r.get("pids"):
            limit = res.pids(r["pids"])
            if limit is not None:
                fs.write(self.path, "pids.max", "max" if limit < 0 else limit)
        if r.get("blockIO"):
            self._set_io(res.block_io(r["blockIO"]))
        if r.get("hugepageLimits"):
            for size, limit in res.hugepage_limits(r["hugepageLimits"]):
                fs.write(self.path, f"hugetlb.{size}.max", limit)
                if os.path.exists(os.path.join(self.path, f"hugetlb.{size}.rsvd.max")):
                    fs.write(self.path, f"hugetlb.{size}.rsvd.max", limit)
        if r.get("network"):
            raise CgroupError("linux.resources.network (net_cls/net_prio) needs cgroup v1")
        if r.get("rdma"):
            raise CgroupError("linux.resources.rdma is not supported by portside-runtime")
        if r.get("unified"):
            self._set_unified(r["unified"])

    def _set_devices(self, rules: list[dev.Rule]) -> None:
        from portside.runtime.cgroups import bpfdev

        bpfdev.install(self.path, rules)

    def _set_memory(self, m: res.Memory) -> None:
        if m.check_before_update:
            res.check_not_below_usage(m.limit, fs.read_uint(self.path, "memory.current"))
        swap = res.swap_to_v2(m.swap, m.limit)
        if m.limit == -1 and swap is None:
            swap = -1
        # Swap first, so an update never briefly leaves memory.max above the total.
        if swap is not None:
            if os.path.exists(os.path.join(self.path, "memory.swap.max")):
                fs.write(self.path, "memory.swap.max", "max" if swap == -1 else swap)
            elif swap not in (-1, 0):
                raise CgroupError(
                    "cannot set memory.swap: the kernel has no swap accounting (memory.swap.max)"
                )
        if m.limit is not None:
            fs.write(self.path, "memory.max", "max" if m.limit == -1 else m.limit)
        if m.reservation is not None:
            fs.write(self.path, "memory.low", "max" if m.reservation == -1 else m.reservation)
        # v2 has no swappiness, kernel TCP limit or OOM-killer switch: ignored, as runc does.

    def _set_cpu(self, c: res.Cpu) -> None:
        if c.realtime_runtime is not None or c.realtime_period is not None:
            raise CgroupError(
                "linux.resources.cpu.realtimeRuntime/realtimePeriod are not supported on cgroup v2"
            )
        if c.shares is not None:
            fs.write(self.path, "cpu.weight", res.shares_to_weight(c.shares))
        if c.quota is not None or c.period is not None:
            value = "max" if c.quota is None or c.quota < 0 else str(c.quota)
            if c.period is not None:
                value += f" {c.period}"
            elif c.quota is not None:
                # Keep the current period: cpu.max takes "quota period".
                current = (fs.read_optional(self.path, "cpu.max") or "max 100000").split()
                value += f" {current[1] if len(current) > 1 else 100000}"
            fs.write(self.path, "cpu.max", value)
        if c.burst is not None:
            fs.write(self.path, "cpu.max.burst", c.burst)
        if c.idle is not None:
            fs.write(self.path, "cpu.idle", c.idle)
        if c.cpus is not None:
            fs.write(self.path, "cpuset.cpus", c.cpus)
        if c.mems is not None:
            fs.write(self.path, "cpuset.mems", c.mems)

    def _set_io(self, b: res.BlockIO) -> None:
        bfq = os.path.exists(os.path.join(self.path, "io.bfq.weight"))
        if b.weight is not None:
            if bfq:
                fs.write(self.path, "io.bfq.weight", b.weight)
            else:
                fs.write(self.path, "io.weight", res.blkio_weight_to_io_weight(b.weight))
        for major, minor, weight, _leaf in b.weight_device:
            if weight is None:
                continue
            if bfq:
                fs.write(self.path, "io.bfq.weight", f"{major}:{minor} {weight}")
            else:
                fs.write(
                    self.path,
                    "io.weight",
                    f"{major}:{minor} {res.blkio_weight_to_io_weight(weight)}",
                )
        for key, entries in (
            ("rbps", b.read_bps),
            ("wbps", b.write_bps),
            ("riops", b.read_iops),
            ("wiops", b.write_iops),
        ):
            for major, minor, rate in entries:
                fs.write(self.path, "io.max", f"{major}:{minor} {key}={rate or 'max'}")

    def _set_unified(self, unified: dict[str, Any]) -> None:
        for key, value in unified.items():
            if not isinstance(key, str) or "/" in key or key in ("", ".", ".."):
                raise CgroupError(f"linux.resources.unified: {key!r} is not a cgroup file name")
            if not isinstance(value, str):
                raise CgroupError(f"linux.resources.unified.{key}: the value must be a string")
            if not os.path.exists(os.path.join(self.path, key)):
                controller = key.split(".", 1)[0]
                available = (fs.read_optional(self.path, "cgroup.controllers") or "").split()
                if controller not in available and controller != "cgroup":
                    raise CgroupError(
                        f"linux.resources.unified.{key}: the {controller} controller is not"
                        f" available in {self.path}"
                    )
                raise CgroupError(f"linux.resources.unified.{key}: no such cgroup file")
            fs.write(self.path, key, value)

    # -- stats and events -----------------------------------------------------------

    def oom_kill_count(self) -> int:
        return fs.read_flat_keyed(self.path, "memory.events").get("oom_kill", 0)

    def stats(self) -> dict[str, Any]:
        """runc's fs2 shape: v2 counters mapped onto the v1-era field names."""
        p = self.path
        cpu = fs.read_flat_keyed(p, "cpu.stat")
        mem_raw = fs.read_flat_keyed(p, "memory.stat")
        usage = {
            "total": cpu.get("usage_usec", 0) * 1000,
            "kernel": cpu.get("system_usec", 0) * 1000,
            "user": cpu.get("user_usec", 0) * 1000,
        }
        throttling = {
            "periods": cpu.get("nr_periods", 0),
            "throttledPeriods": cpu.get("nr_throttled", 0),
            "throttledTime": cpu.get("throttled_usec", 0) * 1000,
        }
        memory_usage = {
            "limit": fs.read_limit(p, "memory.max"),
            "usage": fs.read_uint(p, "memory.current"),
            "max": fs.read_uint(p, "memory.peak"),
            "failcnt": fs.read_flat_keyed(p, "memory.events").get("max", 0),
        }
        swap_usage = {
            "limit": fs.read_limit(p, "memory.swap.max"),
            "usage": fs.read_uint(p, "memory.swap.current"),
            "max": fs.read_uint(p, "memory.swap.peak"),
            "failcnt": fs.read_flat_keyed(p, "memory.swap.events").get("max", 0),
        }
        memory = {
            "cache": mem_raw.get("file", 0),
            "usage": fs.omitempty(memory_usage, "usage", "max"),
            "swap": fs.omitempty(swap_usage, "usage", "max"),
            "kernel": {"limit": 0, "failcnt": 0},
            "kernelTCP": {"limit": 0, "failcnt": 0},
            "raw": mem_raw,
        }
        hugetlb = {}
        for size in res.hugepage_sizes():
            if os.path.exists(os.path.join(p, f"hugetlb.{size}.current")):
                entry = {
                    "usage": fs.read_uint(p, f"hugetlb.{size}.current"),
                    "max": fs.read_limit(p, f"hugetlb.{size}.max"),
                    "failcnt": fs.read_flat_keyed(p, f"hugetlb.{size}.events").get("max", 0),
                }
                hugetlb[size] = fs.omitempty(entry, "usage", "max")
        pids = {"current": fs.read_uint(p, "pids.current"), "limit": fs.read_uint(p, "pids.max")}
        cpuset = {
            "cpus": res.parse_list(fs.read_optional(p, "cpuset.cpus.effective") or ""),
            "mems": res.parse_list(fs.read_optional(p, "cpuset.mems.effective") or ""),
        }
        return {
            "cpu": {
                "usage": fs.omitempty(usage, "total"),
                "throttling": fs.omitempty(throttling, *throttling),
            },
            "cpuset": fs.omitempty(cpuset, "cpus", "mems"),
            "memory": fs.omitempty(memory, "cache", "raw"),
            "pids": fs.omitempty(pids, "current", "limit"),
            "blkio": self._io_stats(),
            "hugetlb": hugetlb,
            "intel_rdt": {},
            "network_interfaces": None,
        }

    def _io_stats(self) -> dict[str, Any]:
        """io.stat "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." -> runc's blkio entries."""
        text = fs.read_optional(self.path, "io.stat") or ""
        service_bytes: list[dict[str, Any]] = []
        serviced: list[dict[str, Any]] = []
        for line in text.splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, minor = (int(x) for x in parts[0].split(":"))
            kv = dict(item.split("=", 1) for item in parts[1:] if "=" in item)
            for key, op, target in (
                ("rbytes", "Read", service_bytes),
                ("wbytes", "Write", service_bytes),
                ("rios", "Read", serviced),
                ("wios", "Write", serviced),
            ):
                if key in kv:
                    target.append({"major": major, "minor": minor, "op": op, "value": int(kv[key])})
        out = {"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced}
        return fs.omitempty(out, *out)


def _rmdir_fake(path: str) -> None:
    """rmdir for a fake hierarchy: its control files are plain files the kernel would not
    have left behind, so they go first."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            os.unlink(full)
    os.rmdir(path)

"""cgroup v1: one directory per mounted controller, written as runc's fs driver does."""

from __future__ import annotations

import errno
import posix
import time
from itertools import groupby

from portside.errors import CgroupError
from portside.linux import pathops
from portside.runtime.cgroups import devices as dev
from portside.runtime.cgroups import fscommon as fs
from portside.runtime.cgroups.manager import CgroupManager
from portside.runtime.cgroups.paths import (
    UNIFIED,
    Mounts,
    own_cgroups,
    read_mounts,
    v1_layout,
)

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any

    from portside.runtime.cgroups import resources as res

_CLK_TCK = posix.sysconf("SC_CLK_TCK")
_FREEZE_TIMEOUT = 10.0


def _file_name(write: tuple[str, str]) -> str:
    return write[0]


class V1Manager(CgroupManager):
    kind = "v1"

    def __init__(self, paths: dict[str, str], *, container_id: str = "") -> None:
        self.paths = dict(paths)
        self.container_id = container_id

    @classmethod
    def for_container(
        cls,
        container_id: str,
        inner: str,
        mounts: Mounts | None = None,
        own: dict[str, str] | None = None,
    ) -> V1Manager:
        mounts = mounts or read_mounts()
        own = own if own is not None else own_cgroups()
        return cls(v1_layout(inner, mounts, own), container_id=container_id)

    # -- state ---------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.container_id, "paths": dict(self.paths)}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> V1Manager:
        return cls(dict(data["paths"]), container_id=data.get("id", ""))

    def path(self, controller: str) -> str | None:
        return self.paths.get(controller)

    # -- lifecycle -------------------------------------------------------------

    def create(self) -> None:
        made: list[str] = []
        try:
            for ctrl, path in self.paths.items():
                if ctrl == "cpuset":
                    self._make_cpuset(path, made)
                elif not pathops.isdir(path):
                    self._makedirs(path, made)
        except BaseException:
            for path in reversed(made):
                try:  # noqa: SIM105 - contextlib costs start-up time
                    posix.rmdir(path)
                except OSError:
                    pass
            raise

    @staticmethod
    def _makedirs(path: str, made: list[str]) -> None:
        missing = []
        p = path
        while not pathops.isdir(p):
            missing.append(p)
            p = pathops.dirname(p)
        for d in reversed(missing):
            try:
                posix.mkdir(d, 0o755)
            except FileExistsError:
                continue
            except OSError as exc:
                raise CgroupError(f"failed to create cgroup {d}: {exc.strerror}") from exc
            made.append(d)

    def _make_cpuset(self, path: str, made: list[str]) -> None:
        """A new cpuset cgroup starts with no cpus and mems: tasks cannot join it until
        they are copied down from the parent, level by level."""
        self._makedirs(path, made)
        chain = []
        p = path
        while pathops.exists(pathops.join(p, "cpuset.cpus")):
            chain.append(p)
            parent = pathops.dirname(p)
            if parent == p or not pathops.exists(pathops.join(parent, "cpuset.cpus")):
                break
            p = parent
        for d in reversed(chain[:-1]):
            parent = pathops.dirname(d)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not fs.read(d, name).strip():
                    fs.write(d, name, fs.read(parent, name).strip())

    def exists(self) -> bool:
        return any(pathops.isdir(p) for p in self.paths.values())

    def add_process(self, pid: int) -> None:
        self._add(pid, self.paths)

    def self_join_files(self) -> list[str]:
        # v1 `tasks` moves one thread, and "0" is the writer: the lock-free path
        return [
            pathops.join(path, "tasks")
            for ctrl, path in self.paths.items()
            if ctrl != UNIFIED and pathops.isdir(path)
        ]

    def deferred_join_dir(self) -> str | None:
        path = self.paths.get(UNIFIED)  # a hybrid host's controller-less cgroup2 directory
        return path if path and pathops.isdir(path) else None

    def add_process_except_self_joined(self, pid: int) -> None:
        # the cgroup2 directory of a hybrid host has no `tasks`: cgroup.procs it is
        self._add(pid, {c: p for c, p in self.paths.items() if c == UNIFIED})

    @staticmethod
    def _add(pid: int, paths: dict[str, str]) -> None:
        for ctrl, path in paths.items():
            if not pathops.isdir(path):
                continue
            try:
                fs.write_retry_eintr(path, "cgroup.procs", pid)
            except CgroupError as exc:
                raise CgroupError(f"cannot add pid {pid} to the {ctrl} cgroup: {exc}") from exc

    def _any_path(self) -> str:
        for ctrl in ("pids", "freezer", "memory", "devices", "cpu"):
            p = self.paths.get(ctrl)
            if p and pathops.isdir(p):
                return p
        for p in self.paths.values():
            if pathops.isdir(p):
                return p
        raise CgroupError(f"cgroup of container {self.container_id or '?'} does not exist")

    def pids(self) -> list[int]:
        try:
            return fs.all_pids(self._any_path())
        except CgroupError:
            return []

    def destroy(self) -> None:
        errors = []
        for path in self.paths.values():
            try:
                fs.remove_tree(path)
            except CgroupError as exc:
                errors.append(str(exc))
        if errors:
            raise CgroupError(errors[0])

    # -- freezer ---------------------------------------------------------------

    def freeze(self) -> None:
        path = self._freezer()
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        while True:
            # Re-writing FROZEN nudges tasks that were forking while we froze.
            fs.write(path, "freezer.state", "FROZEN")
            state = fs.read(path, "freezer.state").strip()
            if state == "FROZEN":
                return
            if time.monotonic() > deadline:
                fs.write(path, "freezer.state", "THAWED")
                raise CgroupError(f"unable to freeze {path}: still {state}")
            time.sleep(0.005)

    def thaw(self) -> None:
        fs.write(self._freezer(), "freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        path = self.paths.get("freezer")
        if not path or not pathops.isdir(path):
            return False
        return fs.read(path, "freezer.state").strip() in ("FROZEN", "FREEZING")

    def _freezer(self) -> str:
        path = self.paths.get("freezer")
        if not path:
            raise CgroupError("the freezer cgroup controller is not mounted")
        return path

    # -- resources ---------------------------------------------------------------

    def apply_resources(
        self, resources: dict[str, Any], *, linux_devices: list[dict[str, Any]] | None = None
    ) -> None:
        """Apply linux.resources. With a "devices" list the effective rules are runc's:
        those, then an allow for each linux.devices entry, then the default devices."""
        from portside.runtime.cgroups import resources as res

        r = resources or {}
        if r.get("unified"):
            raise CgroupError("linux.resources.unified needs cgroup v2; this host uses cgroup v1")
        if "devices" in r:
            self._set_devices(dev.container_rules(r.get("devices"), linux_devices))
        if r.get("memory"):
            self._set_memory(res.memory(r["memory"]))
        if r.get("cpu"):
            self._set_cpu(res.cpu(r["cpu"]))
        if r.get("pids"):
            self._set_pids(res.pids(r["pids"]))
        if r.get("blockIO"):
            self._set_blkio(res.block_io(r["blockIO"]))
        if r.get("hugepageLimits"):
            self._set_hugetlb(res.hugepage_limits(r["hugepageLimits"]))
        if r.get("network"):
            self._set_network(r["network"])
        if r.get("rdma"):
            raise CgroupError("linux.resources.rdma is not supported by portside-runtime")

    def _need(self, ctrl: str, what: str) -> str:
        path = self.paths.get(ctrl)
        if not path:
            raise CgroupError(f"cannot set {what}: the {ctrl} cgroup controller is not mounted")
        return path

    def _set_devices(self, rules: list[dev.Rule]) -> None:
        """Only what differs from the cgroup's current list (dev.v1_transition), so an
        `update` does not take a running container's devices away for a moment."""
        path = self._need("devices", "device rules")
        current = dev.V1State.parse_list(fs.read(path, "devices.list"))
        # a run of writes to one file shares its open
        for name, run in groupby(dev.v1_transition(current, rules), key=_file_name):
            fs.write_each(path, name, [line for _, line in run])

    def _set_memory(self, m: res.Memory) -> None:
        from portside.runtime.cgroups import resources as res

        path = self._need("memory", "memory limits")
        limit, swap = m.limit, m.swap
        if m.check_before_update:
            res.check_not_below_usage(limit, fs.read_uint(path, "memory.usage_in_bytes"))
        has_memsw = pathops.exists(pathops.join(path, "memory.memsw.limit_in_bytes"))
        if limit == -1 and swap is None and has_memsw:
            swap = -1  # runc: an unlimited memory update lifts the swap limit too
        if swap is not None and not has_memsw:
            if swap not in (-1, 0):
                raise CgroupError(
                    "cannot set memory.swap: the kernel has no swap accounting"
                    " (memory.memsw.limit_in_bytes is missing)"
                )
            swap = None
        if limit is not None and swap is not None:
            # Order the writes so memory <= memory+swap holds at every step.
            current = int(fs.read(path, "memory.limit_in_bytes").strip())
            if swap == -1 or current < swap:
                self._write_swap(path, swap)
                self._write_limit(path, limit)
            else:
                self._write_limit(path, limit)
                self._write_swap(path, swap)
        elif limit is not None:
            self._write_limit(path, limit)
        elif swap is not None:
            self._write_swap(path, swap)
        if m.reservation is not None:
            fs.write(path, "memory.soft_limit_in_bytes", m.reservation)
        if m.kernel_tcp is not None and pathops.exists(
            pathops.join(path, "memory.kmem.tcp.limit_in_bytes")
        ):
            fs.write(path, "memory.kmem.tcp.limit_in_bytes", m.kernel_tcp)
        if m.swappiness is not None:
            fs.write(path, "memory.swappiness", m.swappiness)
        if m.disable_oom_killer:
            fs.write(path, "memory.oom_control", 1)

    def _write_limit(self, path: str, limit: int) -> None:
        try:
            fs.write(path, "memory.limit_in_bytes", limit)
        except CgroupError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EBUSY:
                usage = fs.read_uint(path, "memory.usage_in_bytes")
                peak = fs.read_uint(path, "memory.max_usage_in_bytes")
                raise CgroupError(
                    f"unable to set memory limit to {limit} (current usage: {usage},"
                    f" peak usage: {peak})"
                ) from exc
            raise

    @staticmethod
    def _write_swap(path: str, swap: int) -> None:
        fs.write(path, "memory.memsw.limit_in_bytes", swap)

    def _set_cpu(self, c: res.Cpu) -> None:
        if c.cpus is not None or c.mems is not None:
            path = self._need("cpuset", "cpus/mems")
            if c.cpus is not None:
                fs.write(path, "cpuset.cpus", c.cpus)
            if c.mems is not None:
                fs.write(path, "cpuset.mems", c.mems)
        if not c.needs_cpu_controller:
            return
        path = self._need("cpu", "cpu limits")
        if c.shares is not None:
            fs.write(path, "cpu.shares", c.shares)
            got = fs.read_uint(path, "cpu.shares")
            if got > c.shares:
                raise CgroupError(f"the minimum allowed cpu-shares is {got}")
            if got < c.shares:
                raise CgroupError(f"the maximum allowed cpu-shares is {got}")
        if c.period is not None:
            try:
                fs.write(path, "cpu.cfs_period_us", c.period)
            except CgroupError:
                # A period below the current quota is refused; set the quota first.
                if c.quota is None:
                    raise
                fs.write(path, "cpu.cfs_quota_us", c.quota)
                fs.write(path, "cpu.cfs_period_us", c.period)
        if c.quota is not None:
            fs.write(path, "cpu.cfs_quota_us", c.quota)
        if c.burst is not None:
            fs.write(path, "cpu.cfs_burst_us", c.burst)
        if c.realtime_period is not None:
            fs.write(path, "cpu.rt_period_us", c.realtime_period)
        if c.realtime_runtime is not None:
            fs.write(path, "cpu.rt_runtime_us", c.realtime_runtime)
        if c.idle is not None:
            fs.write(path, "cpu.idle", c.idle)

    def _set_pids(self, limit: int | None) -> None:
        if limit is None:
            return
        path = self._need("pids", "pids.limit")
        fs.write(path, "pids.max", "max" if limit < 0 else limit)

    def _set_blkio(self, b: res.BlockIO) -> None:
        path = self._need("blkio", "blockIO limits")
        bfq = pathops.exists(pathops.join(path, "blkio.bfq.weight"))
        weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
        device_file = "blkio.bfq.weight_device" if bfq else "blkio.weight_device"
        if b.weight is not None:
            fs.write(path, weight_file, b.weight)
        if b.leaf_weight is not None:
            fs.write(path, "blkio.leaf_weight", b.leaf_weight)
        for major, minor, weight, leaf in b.weight_device:
            if weight is not None:
                fs.write(path, device_file, f"{major}:{minor} {weight}")
            if leaf is not None:
                fs.write(path, "blkio.leaf_weight_device", f"{major}:{minor} {leaf}")
        for name, entries in (
            ("blkio.throttle.read_bps_device", b.read_bps),
            ("blkio.throttle.write_bps_device", b.write_bps),
            ("blkio.throttle.read_iops_device", b.read_iops),
            ("blkio.throttle.write_iops_device", b.write_iops),
        ):
            for major, minor, rate in entries:
                fs.write(path, name, f"{major}:{minor} {rate}")

    def _set_hugetlb(self, limits: list[tuple[str, int]]) -> None:
        if "hugetlb" not in self.paths and self._unified_has("hugetlb"):
            self._set_hugetlb_unified(limits)
            return
        path = self._need("hugetlb", "hugepageLimits")
        for size, limit in limits:
            fs.write(path, f"hugetlb.{size}.limit_in_bytes", limit)
            rsvd = f"hugetlb.{size}.rsvd.limit_in_bytes"
            if pathops.exists(pathops.join(path, rsvd)):
                fs.write(path, rsvd, limit)

    def _unified_has(self, controller: str) -> bool:
        """Hybrid host whose cgroup2 hierarchy owns `controller` (hugetlb on this machine)."""
        path = self.paths.get(UNIFIED)
        mounts = read_mounts()
        if not path or not mounts.unified:
            return False
        return controller in (fs.read_optional(mounts.unified, "cgroup.controllers") or "").split()

    def _set_hugetlb_unified(self, limits: list[tuple[str, int]]) -> None:
        """runc gives up here ("container could not join or create cgroup"); we use the
        controller where the host has it: enabled down the cgroup2 path to our directory,
        then the v2 files (hugetlb.<size>.max)."""
        path = self.paths[UNIFIED]
        root = read_mounts().unified
        assert root is not None
        rel = pathops.normpath(path).removeprefix(pathops.normpath(root).rstrip("/"))
        current = root
        for part in [p for p in rel.split("/") if p]:
            enabled = (fs.read_optional(current, "cgroup.subtree_control") or "").split()
            if "hugetlb" not in enabled:
                fs.write(current, "cgroup.subtree_control", "+hugetlb")
            current = pathops.join(current, part)
        for size, limit in limits:
            fs.write(path, f"hugetlb.{size}.max", limit)
            if pathops.exists(pathops.join(path, f"hugetlb.{size}.rsvd.max")):
                fs.write(path, f"hugetlb.{size}.rsvd.max", limit)

    def _set_network(self, net: dict[str, Any]) -> None:
        if net.get("classID") is not None:
            path = self._need("net_cls", "network.classID")
            fs.write(path, "net_cls.classid", int(net["classID"]))
        for prio in net.get("priorities") or []:
            path = self._need("net_prio", "network.priorities")
            fs.write(path, "net_prio.ifpriomap", f"{prio['name']} {int(prio['priority'])}")

    # -- stats and events --------------------------------------------------------

    def oom_kill_count(self) -> int:
        path = self.paths.get("memory")
        if not path:
            return 0
        return fs.read_flat_keyed(path, "memory.oom_control").get("oom_kill", 0)

    def under_oom(self) -> bool:
        path = self.paths.get("memory")
        if not path:
            return False
        return bool(fs.read_flat_keyed(path, "memory.oom_control").get("under_oom", 0))

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cpu": self._cpu_stats(),
            "cpuset": self._cpuset_stats(),
            "memory": self._memory_stats(),
            "pids": self._pids_stats(),
            "blkio": self._blkio_stats(),
            "hugetlb": self._hugetlb_stats(),
            "intel_rdt": {},
            "network_interfaces": None,
        }
        return out

    def _cpu_stats(self) -> dict[str, Any]:
        usage: dict[str, Any] = {"total": 0, "kernel": 0, "user": 0}
        throttling = {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}
        acct = self.paths.get("cpuacct")
        if acct and pathops.isdir(acct):
            usage["total"] = fs.read_uint(acct, "cpuacct.usage")
            for key, name in (
                ("percpu", "cpuacct.usage_percpu"),
                ("percpu_kernel", "cpuacct.usage_percpu_sys"),
                ("percpu_user", "cpuacct.usage_percpu_user"),
            ):
                text = fs.read_optional(acct, name)
                if text:
                    usage[key] = [int(x) for x in text.split()]
            ticks = fs.read_flat_keyed(acct, "cpuacct.stat")
            ns_per_tick = 1_000_000_000 // _CLK_TCK
            usage["user"] = ticks.get("user", 0) * ns_per_tick
            usage["kernel"] = ticks.get("system", 0) * ns_per_tick
        cpu = self.paths.get("cpu")
        if cpu and pathops.isdir(cpu):
            st = fs.read_flat_keyed(cpu, "cpu.stat")
            throttling = {
                "periods": st.get("nr_periods", 0),
                "throttledPeriods": st.get("nr_throttled", 0),
                "throttledTime": st.get("throttled_time", 0),
            }
        fs.omitempty(usage, "total", "percpu", "percpu_kernel", "percpu_user")
        fs.omitempty(throttling, "periods", "throttledPeriods", "throttledTime")
        return {"usage": usage, "throttling": throttling}

    def _cpuset_stats(self) -> dict[str, Any]:
        from portside.runtime.cgroups import resources as res

        path = self.paths.get("cpuset")
        if not path or not pathops.isdir(path):
            return {}
        return {
            "cpus": res.parse_list(fs.read_optional(path, "cpuset.effective_cpus") or ""),
            "mems": res.parse_list(fs.read_optional(path, "cpuset.effective_mems") or ""),
            "cpu_exclusive": fs.read_uint(path, "cpuset.cpu_exclusive"),
            "mem_exclusive": fs.read_uint(path, "cpuset.mem_exclusive"),
            "mem_hardwall": fs.read_uint(path, "cpuset.mem_hardwall"),
            "memory_migrate": fs.read_uint(path, "cpuset.memory_migrate"),
            "memory_pressure": fs.read_uint(path, "cpuset.memory_pressure"),
            "memory_spread_page": fs.read_uint(path, "cpuset.memory_spread_page"),
            "memory_spread_slab": fs.read_uint(path, "cpuset.memory_spread_slab"),
            "sched_load_balance": fs.read_uint(path, "cpuset.sched_load_balance"),
            "sched_relax_domain_level": int(
                (fs.read_optional(path, "cpuset.sched_relax_domain_level") or "0").strip() or 0
            ),
        }

    def _memory_stats(self) -> dict[str, Any]:
        path = self.paths.get("memory")
        if not path or not pathops.isdir(path):
            return {}

        def entry(prefix: str) -> dict[str, Any]:
            e = {
                "limit": fs.read_limit(path, f"{prefix}.limit_in_bytes"),
                "usage": fs.read_uint(path, f"{prefix}.usage_in_bytes"),
                "max": fs.read_uint(path, f"{prefix}.max_usage_in_bytes"),
                "failcnt": fs.read_uint(path, f"{prefix}.failcnt"),
            }
            return fs.omitempty(e, "usage", "max")

        raw = fs.read_flat_keyed(path, "memory.stat")
        out = {
            "cache": raw.get("cache", 0),
            "usage": entry("memory"),
            "swap": entry("memory.memsw"),
            "kernel": entry("memory.kmem"),
            "kernelTCP": entry("memory.kmem.tcp"),
            "raw": raw,
        }
        return fs.omitempty(out, "cache", "raw")

    def _pids_stats(self) -> dict[str, Any]:
        path = self.paths.get("pids")
        if not path or not pathops.isdir(path):
            return {}
        out = {
            "current": fs.read_uint(path, "pids.current"),
            "limit": fs.read_uint(path, "pids.max"),
        }
        return fs.omitempty(out, "current", "limit")

    def _blkio_stats(self) -> dict[str, Any]:
        from portside.runtime.cgroups import resources as res

        path = self.paths.get("blkio")
        if not path or not pathops.isdir(path):
            return {}
        bfq = pathops.exists(pathops.join(path, "blkio.bfq.io_service_bytes_recursive"))
        prefix = "blkio.bfq" if bfq else "blkio.throttle"
        out: dict[str, Any] = {}
        for key, name in (
            ("ioServiceBytesRecursive", f"{prefix}.io_service_bytes_recursive"),
            ("ioServicedRecursive", f"{prefix}.io_serviced_recursive"),
        ):
            out[key] = res.parse_blkio_entries(fs.read_optional(path, name) or "")
        return fs.omitempty(out, "ioServiceBytesRecursive", "ioServicedRecursive")

    def _hugetlb_stats(self) -> dict[str, Any]:
        from portside.runtime.cgroups import resources as res

        path = self.paths.get("hugetlb")
        unified = self.paths.get(UNIFIED)
        if not path and unified and pathops.isdir(unified):
            return self._hugetlb_stats_unified(unified)
        if not path or not pathops.isdir(path):
            return {}
        out = {}
        for size in res.hugepage_sizes():
            entry = {
                "usage": fs.read_uint(path, f"hugetlb.{size}.usage_in_bytes"),
                "max": fs.read_uint(path, f"hugetlb.{size}.max_usage_in_bytes"),
                "failcnt": fs.read_uint(path, f"hugetlb.{size}.failcnt"),
            }
            out[size] = fs.omitempty(entry, "usage", "max")
        return out

    @staticmethod
    def _hugetlb_stats_unified(path: str) -> dict[str, Any]:
        from portside.runtime.cgroups import resources as res

        out = {}
        for size in res.hugepage_sizes():
            if not pathops.exists(pathops.join(path, f"hugetlb.{size}.current")):
                continue
            entry = {
                "usage": fs.read_uint(path, f"hugetlb.{size}.current"),
                "max": fs.read_limit(path, f"hugetlb.{size}.max"),
                "failcnt": fs.read_flat_keyed(path, f"hugetlb.{size}.events").get("max", 0),
            }
            out[size] = fs.omitempty(entry, "usage", "max")
        return out

"""linux.resources parsed into checked values, and the v1 -> v2 conversions runc uses.

Both drivers read the spec through here, so a bad value is the same one-line
error whichever cgroup version the host has, and it names the field.
"""

from __future__ import annotations

import posix

from portside.errors import CgroupError

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any

_I64_MAX = (1 << 63) - 1


def _int(value: Any, where: str, *, lo: int = -(1 << 63), hi: int = (1 << 64) - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise CgroupError(f"linux.resources.{where}: invalid value {value!r}")
    return value


def _opt(obj: dict[str, Any], key: str, where: str, **kw: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    return _int(value, f"{where}.{key}", **kw)


class Memory:
    def __init__(
        self,
        limit: int | None = None,
        reservation: int | None = None,
        swap: int | None = None,
        kernel_tcp: int | None = None,
        disable_oom_killer: bool = False,
    ) -> None:
        self.limit = limit
        self.reservation = reservation
        self.swap = swap  # memory + swap, as v1 and the spec count it
        self.kernel_tcp = kernel_tcp
        self.swappiness: int | None = None
        self.disable_oom_killer = disable_oom_killer
        self.check_before_update = False


def memory(m: dict[str, Any]) -> Memory:
    out = Memory(
        limit=_opt(m, "limit", "memory", lo=-1, hi=_I64_MAX),
        reservation=_opt(m, "reservation", "memory", lo=-1, hi=_I64_MAX),
        swap=_opt(m, "swap", "memory", lo=-1, hi=_I64_MAX),
        kernel_tcp=_opt(m, "kernelTCP", "memory", lo=-1, hi=_I64_MAX),
        disable_oom_killer=bool(m.get("disableOOMKiller")),
    )
    out.check_before_update = bool(m.get("checkBeforeUpdate"))
    if out.swap == 0:
        out.swap = None  # 0 means "not set" to runc
    sw = m.get("swappiness")
    if sw is not None:
        # runc treats the -1/uint64-max sentinel as "not set"
        if isinstance(sw, int) and not isinstance(sw, bool) and (sw == -1 or sw >= 1 << 63):
            sw = None
        elif not isinstance(sw, int) or isinstance(sw, bool) or not 0 <= sw <= 100:
            raise CgroupError(
                f"linux.resources.memory.swappiness: invalid value {sw!r} (valid range is 0-100)"
            )
        out.swappiness = sw
    lim, swap = out.limit, out.swap
    if lim is not None and swap is not None and 0 < swap < lim:
        raise CgroupError(
            "linux.resources.memory.swap: memory+swap limit should be >= memory limit"
        )
    return out


class Cpu:
    def __init__(
        self,
        shares: int | None = None,
        quota: int | None = None,
        burst: int | None = None,
        period: int | None = None,
        realtime_runtime: int | None = None,
        realtime_period: int | None = None,
        idle: int | None = None,
    ) -> None:
        self.shares = shares
        self.quota = quota
        self.burst = burst
        self.period = period
        self.realtime_runtime = realtime_runtime
        self.realtime_period = realtime_period
        self.idle = idle
        self.cpus: str | None = None
        self.mems: str | None = None

    @property
    def needs_cpu_controller(self) -> bool:
        return any(
            v is not None
            for v in (
                self.shares,
                self.quota,
                self.burst,
                self.period,
                self.realtime_runtime,
                self.realtime_period,
                self.idle,
            )
        )


def _is_list(value: str) -> bool:
    """A kernel cpu/mem list: "0-2,4" (no regex module on the start path)."""
    for part in value.strip().split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            return False
    return True


def cpu(c: dict[str, Any]) -> Cpu:
    out = Cpu(
        shares=_opt(c, "shares", "cpu", lo=0),
        quota=_opt(c, "quota", "cpu", lo=-1, hi=_I64_MAX),
        burst=_opt(c, "burst", "cpu", lo=0),
        period=_opt(c, "period", "cpu", lo=0),
        realtime_runtime=_opt(c, "realtimeRuntime", "cpu", lo=-1, hi=_I64_MAX),
        realtime_period=_opt(c, "realtimePeriod", "cpu", lo=0),
        idle=_opt(c, "idle", "cpu", lo=0, hi=1),
    )
    # runc: zero means "leave as is" for these
    for name in ("shares", "quota", "period", "realtime_runtime", "realtime_period"):
        if getattr(out, name) == 0:
            setattr(out, name, None)
    for key in ("cpus", "mems"):
        value = c.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not _is_list(value):
            raise CgroupError(f"linux.resources.cpu.{key}: invalid list {value!r} (e.g. 0-2,4)")
        setattr(out, key, value.strip())
    return out


def check_not_below_usage(limit: int | None, usage: int) -> None:
    """memory.checkBeforeUpdate: refuse a limit under what the cgroup already uses, rather
    than let the kernel reclaim or OOM-kill to meet it."""
    if limit is not None and limit > 0 and usage > limit:
        raise CgroupError(
            f"linux.resources.memory.limit: rejecting memory limit {limit} below the"
            f" current usage {usage} (checkBeforeUpdate)"
        )


def pids(p: dict[str, Any]) -> int | None:
    limit = p.get("limit")
    if limit is None:
        return None
    limit = _int(limit, "pids.limit", hi=_I64_MAX)
    return None if limit == 0 else limit  # runc: 0 is "not set", negative is unlimited


class BlockIO:
    def __init__(self, weight: int | None = None, leaf_weight: int | None = None) -> None:
        self.weight = weight
        self.leaf_weight = leaf_weight
        self.weight_device: list[tuple[int, int, int | None, int | None]] = []
        self.read_bps: list[tuple[int, int, int]] = []
        self.write_bps: list[tuple[int, int, int]] = []
        self.read_iops: list[tuple[int, int, int]] = []
        self.write_iops: list[tuple[int, int, int]] = []


def block_io(b: dict[str, Any]) -> BlockIO:
    out = BlockIO(
        weight=_opt(b, "weight", "blockIO", lo=0, hi=1000),
        leaf_weight=_opt(b, "leafWeight", "blockIO", lo=0, hi=1000),
    )
    if out.weight == 0:
        out.weight = None
    if out.leaf_weight == 0:
        out.leaf_weight = None
    for i, d in enumerate(b.get("weightDevice") or []):
        where = f"blockIO.weightDevice[{i}]"
        out.weight_device.append(
            (
                _int(d.get("major"), f"{where}.major", lo=0),
                _int(d.get("minor"), f"{where}.minor", lo=0),
                _opt(d, "weight", where, lo=0, hi=1000),
                _opt(d, "leafWeight", where, lo=0, hi=1000),
            )
        )
    for key, target in (
        ("throttleReadBpsDevice", out.read_bps),
        ("throttleWriteBpsDevice", out.write_bps),
        ("throttleReadIOPSDevice", out.read_iops),
        ("throttleWriteIOPSDevice", out.write_iops),
    ):
        for i, d in enumerate(b.get(key) or []):
            where = f"blockIO.{key}[{i}]"
            target.append(
                (
                    _int(d.get("major"), f"{where}.major", lo=0),
                    _int(d.get("minor"), f"{where}.minor", lo=0),
                    _int(d.get("rate"), f"{where}.rate", lo=0),
                )
            )
    return out


def hugepage_sizes(base: str = "/sys/kernel/mm/hugepages") -> list[str]:
    """The kernel's huge page sizes in cgroup file naming: 2MB, 1GB."""
    sizes = []
    try:
        names = sorted(posix.listdir(base))
    except OSError:
        return []
    for name in names:
        kb = name.removeprefix("hugepages-").removesuffix("kB")
        if name.startswith("hugepages-") and name.endswith("kB") and kb.isdigit():
            sizes.append(_size_name(int(kb) * 1024))
    return sizes


def _size_name(n: int) -> str:
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


def hugepage_limits(limits: list[dict[str, Any]]) -> list[tuple[str, int]]:
    sizes = hugepage_sizes()
    out = []
    for i, item in enumerate(limits):
        size = item.get("pageSize")
        if not isinstance(size, str) or (sizes and size not in sizes):
            raise CgroupError(
                f"linux.resources.hugepageLimits[{i}].pageSize: {size!r} is not a huge page"
                f" size of this kernel ({', '.join(sizes) or 'none'})"
            )
        out.append((size, _int(item.get("limit"), f"hugepageLimits[{i}].limit", lo=0)))
    return out


# -- v1 -> v2 conversions (runc's formulas, so weights match a runc-made cgroup) ----


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], runc 1.1's linear map."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000]."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int | None, limit: int | None) -> int | None:
    """The spec's memory+swap to v2's memory.swap.max (swap alone); -1 is "max"."""
    if swap is None or swap == 0:
        return None
    if swap == -1:
        return -1
    if limit is None or limit <= 0:
        raise CgroupError(
            "linux.resources.memory.swap: a swap limit needs a memory limit on cgroup v2"
        )
    if swap < limit:
        raise CgroupError(
            "linux.resources.memory.swap: memory+swap limit should be >= memory limit"
        )
    return swap - limit


def parse_list(text: str) -> list[int]:
    """ "0-2,4" -> [0, 1, 2, 4]"""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def parse_blkio_entries(text: str) -> list[dict[str, Any]]:
    """v1 blkio stat lines "8:0 Read 4096" -> runc's BlkioEntry objects."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            out.append(
                {"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])}
            )
    return out

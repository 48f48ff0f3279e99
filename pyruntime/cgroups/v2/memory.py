"""v2 memory controller: limit -> memory.max, reservation -> memory.low, swap -> memory.swap.max
(= swap - limit, runc's ConvertMemorySwapToCgroupV2Value), checkBeforeUpdate."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.errors import ConfigError, RuntimeFailure, Unsupported

NAME = "memory"
MAX = (1 << 64) - 1


def _n(v):
    return None if v is None or v == 0 else int(v)


def num(v: int) -> str:
    return "max" if v == -1 else str(v)


def needed(r) -> bool:
    m = g(r, "memory")
    return m is not None and any(g(m, k) is not None for k in (
        "limit", "reservation", "swap", "kernel", "kernel_tcp", "swappiness", "disable_oom_killer",
        "use_hierarchy"))


def swap_v2(swap: int | None, limit: int | None) -> int | None:
    """runc ConvertMemorySwapToCgroupV2Value (None = unset, -1 = max)."""
    if limit == -1 and swap is None:
        return -1
    if swap is None or swap == -1:
        return swap
    if limit is None or limit == -1:
        raise ConfigError("unable to set swap limit without memory limit")
    if limit < 0:
        raise ConfigError(f"invalid memory value: {limit}")
    if swap < limit:
        raise ConfigError("memory+swap limit should be >= memory limit")
    return swap - limit


def set(path: str, r, mgr) -> None:
    m = g(r, "memory")
    if m is None:
        return
    from pyruntime.log import warn

    sw = g(m, "swappiness")
    if sw is not None and int(sw) != -1:
        raise Unsupported("cannot set memory.swappiness: not supported on cgroup v2")
    if g(m, "use_hierarchy") is False:
        raise Unsupported("cannot set memory.useHierarchy=false: cgroup v2 is always hierarchical")
    if g(m, "kernel") is not None:
        warn("memory.kernel is deprecated and ignored (no kernel memory limit on cgroup v2)")
    if g(m, "kernel_tcp") is not None:
        warn("memory.kernelTCP is ignored (no kernel TCP memory limit on cgroup v2)")
    if g(m, "disable_oom_killer"):
        warn("memory.disableOOMKiller is ignored (the OOM killer cannot be disabled on cgroup v2)")
    limit, res = _n(g(m, "limit")), _n(g(m, "reservation"))
    swap = swap_v2(_n(g(m, "swap")), limit)
    if g(m, "check_before_update") and limit is not None and limit > 0:
        usage = fs.read_uint(path, "memory.current")
        if usage >= limit:
            raise RuntimeFailure(f"rejecting memory limit {limit} below current usage {usage}")
    if swap is not None:
        if fs.exists(path, "memory.swap.max"):
            fs.write(path, "memory.swap.max", num(swap))
        elif swap not in (-1, 0):
            raise Unsupported("cannot set memory.swap: swap accounting is not enabled (no memory.swap.max)")
    if limit is not None:
        fs.write(path, "memory.max", num(limit))
    if res is not None:
        fs.write(path, "memory.low", num(res))


def _entry(path: str, cur: str, lim: str) -> dict:
    limit = (fs.read_or(path, lim, "") or "").strip()
    return {"limit": MAX if limit in ("max", "") else int(limit), "usage": fs.read_uint(path, cur),
            "max": fs.read_uint(path, cur.replace("current", "peak")), "failcnt": 0}


def stats(path: str, st: dict) -> None:
    raw = fs.read_keyed(path, "memory.stat")
    mem = st["memory"]
    mem["raw"] = dict(sorted(raw.items())) or None
    mem["cache"] = raw.get("file", 0)
    mem["usage"] = _entry(path, "memory.current", "memory.max")
    mem["usage"]["failcnt"] = fs.read_keyed(path, "memory.events").get("max", 0)
    if fs.exists(path, "memory.swap.current"):
        sw = _entry(path, "memory.swap.current", "memory.swap.max")
        # v1 reports memory+swap: do the same (runc)
        sw["usage"] += mem["usage"]["usage"]
        if sw["limit"] != MAX:
            sw["limit"] += mem["usage"]["limit"]
        mem["swap"] = sw


def oom_kill_count(path: str) -> int:
    return fs.read_keyed(path, "memory.events").get("oom_kill", 0)

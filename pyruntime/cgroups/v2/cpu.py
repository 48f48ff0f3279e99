"""v2 cpu controller: shares -> cpu.weight (runc's ConvertCPUSharesToCgroupV2Value), quota/period ->
cpu.max, burst -> cpu.max.burst, idle -> cpu.idle."""

from __future__ import annotations

import errno

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.errors import ConfigError, Unsupported

NAME = "cpu"


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (runc)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def needed(r) -> bool:
    c = g(r, "cpu")
    return c is not None and any(g(c, k) is not None for k in (
        "shares", "quota", "period", "burst", "idle", "realtime_runtime", "realtime_period"))


def set(path: str, r, mgr) -> None:
    c = g(r, "cpu")
    if c is None:
        return
    if g(c, "realtime_runtime") or g(c, "realtime_period"):
        raise Unsupported("cannot set cpu.realtimeRuntime/realtimePeriod: not supported on cgroup v2")
    idle = g(c, "idle")
    if idle is not None:
        if not fs.exists(path, "cpu.idle"):
            if idle != 0:
                raise Unsupported("cannot set cpu.idle: this kernel has no cpu.idle")
        else:
            fs.write(path, "cpu.idle", int(idle))
    shares = g(c, "shares")
    if shares:
        fs.write(path, "cpu.weight", shares_to_weight(int(shares)))
    quota, period, burst = g(c, "quota"), g(c, "period"), g(c, "burst")
    if quota is not None and quota > 0 and burst is not None and burst > quota:
        raise ConfigError(f"cpu burst {burst} must not be larger than the quota {quota}")
    retry_burst = False
    if burst is not None:
        if not fs.exists(path, "cpu.max.burst"):
            raise Unsupported("cannot set cpu.burst: this kernel has no cpu.max.burst")
        try:
            fs.write(path, "cpu.max.burst", int(burst))
        except fs.WriteError as e:
            if e.errno != errno.EINVAL or not quota:
                raise
            retry_burst = True
    if quota or period:
        s = str(int(quota)) if quota and quota > 0 else "max"
        if period:
            s += f" {int(period)}"
        fs.write(path, "cpu.max", s)
        if retry_burst:
            fs.write(path, "cpu.max.burst", int(burst))


def stats(path: str, st: dict) -> None:
    t = fs.read_keyed(path, "cpu.stat")
    u = st["cpu"]["usage"]
    u["total"] = t.get("usage_usec", 0) * 1000
    u["user"] = t.get("user_usec", 0) * 1000
    u["kernel"] = t.get("system_usec", 0) * 1000
    th = st["cpu"]["throttling"]
    th["periods"] = t.get("nr_periods", 0)
    th["throttledPeriods"] = t.get("nr_throttled", 0)
    th["throttledTime"] = t.get("throttled_usec", 0) * 1000

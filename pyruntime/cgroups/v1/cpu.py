"""v1 cpu controller: shares, CFS quota/period/burst, RT runtime/period, idle."""

from __future__ import annotations

import errno

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.errors import ConfigError, RuntimeFailure, Unsupported

NAME = "cpu"


def needed(r) -> bool:
    c = g(r, "cpu")
    return c is not None and any(g(c, k) is not None for k in (
        "shares", "quota", "period", "burst", "realtime_runtime", "realtime_period", "idle"))


def set_rt(path: str, r) -> None:
    """RT settings are written before processes join (a SCHED_RR process cannot join a cgroup
    without RT budget), and again in set()."""
    c = g(r, "cpu")
    if c is None:
        return
    p, rt = g(c, "realtime_period"), g(c, "realtime_runtime")
    if p:
        if not fs.exists(path, "cpu.rt_period_us"):
            raise Unsupported("cannot set cpu.realtimePeriod: the kernel has no RT group scheduling "
                              "(CONFIG_RT_GROUP_SCHED)")
        fs.write(path, "cpu.rt_period_us", int(p))
    if rt:
        if not fs.exists(path, "cpu.rt_runtime_us"):
            raise Unsupported("cannot set cpu.realtimeRuntime: the kernel has no RT group scheduling "
                              "(CONFIG_RT_GROUP_SCHED)")
        fs.write(path, "cpu.rt_runtime_us", int(rt))


def set(path: str, r, mgr) -> None:
    c = g(r, "cpu")
    if c is None:
        return
    shares = g(c, "shares")
    if shares:
        fs.write(path, "cpu.shares", int(shares))
        got = fs.read_uint(path, "cpu.shares")
        if shares > got:
            raise RuntimeFailure(f"the maximum allowed cpu-shares is {got}")
        if shares < got:
            raise RuntimeFailure(f"the minimum allowed cpu-shares is {got}")
    period, quota, burst = g(c, "period"), g(c, "quota"), g(c, "burst")
    if quota is not None and quota > 0 and burst is not None and burst > quota:
        raise ConfigError(f"cpu burst {burst} must not be larger than the quota {quota}")
    retry_period = False
    if period:
        try:
            fs.write(path, "cpu.cfs_period_us", int(period))
        except fs.WriteError as e:
            # a smaller period can be refused (old quota/new period over the parent's); retry
            # after the quota is written, as runc does
            if e.errno != errno.EINVAL or not quota:
                raise
            retry_period = True
    if quota:
        fs.write(path, "cpu.cfs_quota_us", int(quota))
        if retry_period:
            fs.write(path, "cpu.cfs_period_us", int(period))
    if burst is not None:
        if not fs.exists(path, "cpu.cfs_burst_us"):
            raise Unsupported("cannot set cpu.burst: this kernel has no cpu.cfs_burst_us")
        fs.write(path, "cpu.cfs_burst_us", int(burst))
    set_rt(path, r)
    idle = g(c, "idle")
    if idle is not None:
        if not fs.exists(path, "cpu.idle"):
            if idle == 0:
                return
            raise Unsupported("cannot set cpu.idle: this kernel has no cpu.idle")
        fs.write(path, "cpu.idle", int(idle))


def stats(path: str, st: dict) -> None:
    t = fs.read_keyed(path, "cpu.stat")
    th = st["cpu"]["throttling"]
    th["periods"] = t.get("nr_periods", 0)
    th["throttledPeriods"] = t.get("nr_throttled", 0)
    th["throttledTime"] = t.get("throttled_time", 0)

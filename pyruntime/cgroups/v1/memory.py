"""v1 memory controller: every linux.resources.memory field -> memory.* files."""

from __future__ import annotations

import errno
import os

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.errors import ConfigError, RuntimeFailure, Unsupported

NAME = "memory"
LIMIT = "memory.limit_in_bytes"
MEMSW = "memory.memsw.limit_in_bytes"


def _n(v):
    # runc uses 0 for "unset"; the spec model uses None. 0 is never a useful memory value.
    return None if v is None or v == 0 else int(v)


def needed(r) -> bool:
    m = g(r, "memory")
    return m is not None and any(g(m, k) is not None for k in (
        "limit", "reservation", "swap", "kernel", "kernel_tcp", "swappiness", "disable_oom_killer",
        "use_hierarchy"))


def _set_limit(path: str, val: int) -> None:
    try:
        fs.write(path, LIMIT, val)
    except fs.WriteError as e:
        if e.errno != errno.EBUSY:
            raise
        usage = fs.read_uint(path, "memory.usage_in_bytes")
        peak = fs.read_uint(path, "memory.max_usage_in_bytes")
        raise RuntimeFailure(f"unable to set memory limit to {val} (current usage: {usage}, "
                             f"peak usage: {peak})") from None


def _set_swap(path: str, val: int) -> None:
    if not fs.exists(path, MEMSW):
        raise Unsupported("cannot set memory.swap: swap accounting is not enabled in this kernel "
                          f"(no {MEMSW})")
    fs.write(path, MEMSW, val)


def set(path: str, r, mgr) -> None:
    m = g(r, "memory")
    if m is None:
        return
    limit, swap = _n(g(m, "limit")), _n(g(m, "swap"))
    if g(m, "check_before_update") and limit is not None and limit > 0:
        usage = fs.read_uint(path, "memory.usage_in_bytes")
        if usage >= limit:
            raise RuntimeFailure(f"rejecting memory limit {limit} below current usage {usage}")
    # runc setMemoryAndSwap: memory -1 without swap means swap -1 too (when memsw exists)
    if limit == -1 and swap is None and fs.exists(path, MEMSW):
        swap = -1
    if swap is not None and swap != -1 and limit is not None and limit != -1 and swap < limit:
        raise ConfigError("memory+swap limit should be >= memory limit")
    if limit is not None and swap is not None:
        cur = fs.read_uint(path, LIMIT)
        # the kernel wants memory <= memsw at every step: order the two writes accordingly
        if swap == -1 or cur < swap:
            _set_swap(path, swap)
            _set_limit(path, limit)
        else:
            _set_limit(path, limit)
            _set_swap(path, swap)
    elif limit is not None:
        _set_limit(path, limit)
    elif swap is not None:
        _set_swap(path, swap)

    res = _n(g(m, "reservation"))
    if res is not None:
        fs.write(path, "memory.soft_limit_in_bytes", res)
    if g(m, "kernel") is not None:
        from pyruntime.log import warn
        warn("memory.kernel is deprecated and ignored (kernel memory accounting limits are not "
             "supported by recent kernels)")
    ktcp = g(m, "kernel_tcp")
    if ktcp is not None and ktcp != 0:
        if not fs.exists(path, "memory.kmem.tcp.limit_in_bytes"):
            raise Unsupported("cannot set memory.kernelTCP: this kernel has no memory.kmem.tcp.limit_in_bytes")
        fs.write(path, "memory.kmem.tcp.limit_in_bytes", int(ktcp))
    if g(m, "disable_oom_killer"):
        fs.write(path, "memory.oom_control", "1")
    sw = g(m, "swappiness")
    if sw is not None and int(sw) != -1:
        if not 0 <= int(sw) <= 100:
            raise ConfigError(f"invalid memory swappiness value: {sw} (valid range is 0-100)")
        fs.write(path, "memory.swappiness", int(sw))
    uh = g(m, "use_hierarchy")
    if uh is not None:
        try:
            fs.write(path, "memory.use_hierarchy", "1" if uh else "0")
        except fs.WriteError as e:
            raise Unsupported(f"cannot set memory.useHierarchy={str(bool(uh)).lower()}: "
                              f"{os.strerror(e.errno)} (this kernel always uses hierarchical "
                              "accounting)") from None


def _entry(path: str, prefix: str) -> dict:
    p = "memory." + (prefix + "." if prefix else "")
    return {"limit": fs.read_uint(path, p + "limit_in_bytes"), "usage": fs.read_uint(path, p + "usage_in_bytes"),
            "max": fs.read_uint(path, p + "max_usage_in_bytes"), "failcnt": fs.read_uint(path, p + "failcnt")}


def stats(path: str, st: dict) -> None:
    raw = fs.read_keyed(path, "memory.stat")
    mem = st["memory"]
    mem["raw"] = dict(sorted(raw.items())) or None
    mem["cache"] = raw.get("cache", 0)
    mem["usage"] = _entry(path, "")
    if fs.exists(path, "memory.memsw.usage_in_bytes"):
        mem["swap"] = _entry(path, "memsw")
    if fs.exists(path, "memory.kmem.usage_in_bytes"):
        mem["kernel"] = _entry(path, "kmem")
    if fs.exists(path, "memory.kmem.tcp.usage_in_bytes"):
        mem["kernelTCP"] = _entry(path, "kmem.tcp")


def oom_kill_count(path: str) -> int:
    return fs.read_keyed(path, "memory.oom_control").get("oom_kill", 0)

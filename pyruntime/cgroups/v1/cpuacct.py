"""v1 cpuacct controller: only statistics."""

from __future__ import annotations

import os

from pyruntime.cgroups import fs

NAME = "cpuacct"
_NS_PER_TICK = 10**9 // os.sysconf("SC_CLK_TCK")


def set(path: str, r, mgr) -> None:
    pass


def stats(path: str, st: dict) -> None:
    u = st["cpu"]["usage"]
    u["total"] = fs.read_uint(path, "cpuacct.usage")
    s = fs.read_or(path, "cpuacct.usage_percpu")
    if s:
        u["percpu"] = [int(x) for x in s.split()]
    all_ = fs.read_or(path, "cpuacct.usage_all")
    if all_:
        k, us = [], []
        for line in all_.splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3:
                us.append(int(parts[1]))
                k.append(int(parts[2]))
        u["percpu_kernel"], u["percpu_user"] = k or None, us or None
    t = fs.read_keyed(path, "cpuacct.stat")
    u["user"] = t.get("user", 0) * _NS_PER_TICK
    u["kernel"] = t.get("system", 0) * _NS_PER_TICK

"""v1 cpuset controller: cpus, mems. New cpuset directories start with empty cpus/mems, so the
parent's values are copied down first (runc's ensureParent/copyIfNeeded)."""

from __future__ import annotations

import os

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g

NAME = "cpuset"


def needed(r) -> bool:
    c = g(r, "cpu")
    return c is not None and (g(c, "cpus") is not None or g(c, "mems") is not None)


def prepare(path: str, mountpoint: str) -> None:
    """Copy cpus/mems from the parent into every empty level from the mount point down."""
    rel = os.path.relpath(path, mountpoint)
    cur = mountpoint
    if rel == ".":
        return
    for part in rel.split("/"):
        parent, cur = cur, os.path.join(cur, part)
        for f in ("cpuset.cpus", "cpuset.mems"):
            if not (fs.read_or(cur, f, "") or "").strip():
                v = (fs.read_or(parent, f, "") or "").strip()
                if v:
                    fs.write(cur, f, v)


def set(path: str, r, mgr) -> None:
    c = g(r, "cpu")
    if c is None:
        return
    cpus, mems = g(c, "cpus"), g(c, "mems")
    # mems first: a cpuset needs both to accept tasks; either order is refused only when
    # the value is not a subset of the parent's
    if mems:
        fs.write(path, "cpuset.mems", mems)
    if cpus:
        fs.write(path, "cpuset.cpus", cpus)


def _list(s: str | None) -> list[int] | None:
    if not s or not s.strip():
        return None
    out: list[int] = []
    for part in s.strip().split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def stats(path: str, st: dict) -> None:
    c = st["cpuset"]
    c["cpus"] = _list(fs.read_or(path, "cpuset.cpus"))
    c["mems"] = _list(fs.read_or(path, "cpuset.mems"))
    for k in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
              "memory_spread_slab", "memory_pressure", "sched_load_balance"):
        c[k] = fs.read_uint(path, "cpuset." + k)
    s = fs.read_or(path, "cpuset.sched_relax_domain_level")
    c["sched_relax_domain_level"] = int(s) if s and s.strip().lstrip("-").isdigit() else 0

"""v1 pids controller: pids.limit -> pids.max (0 is a real limit, -1 is max)."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g

NAME = "pids"


def needed(r) -> bool:
    return g(g(r, "pids"), "limit") is not None


def value(limit: int) -> str:
    return "max" if limit < 0 else str(int(limit))


def set(path: str, r, mgr) -> None:
    limit = g(g(r, "pids"), "limit")
    if limit is not None:
        fs.write(path, "pids.max", value(limit))


def stats(path: str, st: dict) -> None:
    st["pids"]["current"] = fs.read_uint(path, "pids.current")
    m = (fs.read_or(path, "pids.max", "") or "").strip()
    st["pids"]["limit"] = 0 if m in ("max", "") else int(m)

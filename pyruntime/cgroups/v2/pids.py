"""v2 pids controller: pids.limit -> pids.max (0 is a real limit, -1 is max)."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.cgroups.v1.pids import stats, value  # noqa: F401 -- same files on v2

NAME = "pids"


def needed(r) -> bool:
    return g(g(r, "pids"), "limit") is not None


def set(path: str, r, mgr) -> None:
    limit = g(g(r, "pids"), "limit")
    if limit is not None:
        fs.write(path, "pids.max", value(limit))

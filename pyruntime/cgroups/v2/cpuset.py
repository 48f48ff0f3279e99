"""v2 cpuset controller: cpu.cpus -> cpuset.cpus, cpu.mems -> cpuset.mems."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.cgroups.v1.cpuset import _list

NAME = "cpuset"


def needed(r) -> bool:
    c = g(r, "cpu")
    return c is not None and (bool(g(c, "cpus")) or bool(g(c, "mems")))


def set(path: str, r, mgr) -> None:
    c = g(r, "cpu")
    if g(c, "cpus"):
        fs.write(path, "cpuset.cpus", g(c, "cpus"))
    if g(c, "mems"):
        fs.write(path, "cpuset.mems", g(c, "mems"))


def stats(path: str, st: dict) -> None:
    st["cpuset"]["cpus"] = _list(fs.read_or(path, "cpuset.cpus.effective"))
    st["cpuset"]["mems"] = _list(fs.read_or(path, "cpuset.mems.effective"))

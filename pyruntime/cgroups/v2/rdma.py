"""v2 rdma controller: rdma -> rdma.max (same lines as v1)."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.cgroups.v1.rdma import lines

NAME = "rdma"


def needed(r) -> bool:
    return bool(g(r, "rdma"))


def set(path: str, r, mgr) -> None:
    for line in lines(r):
        fs.write(path, "rdma.max", line)


def stats(path: str, st: dict) -> None:
    pass

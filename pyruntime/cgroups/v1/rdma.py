"""v1 rdma controller: rdma -> rdma.max."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g

NAME = "rdma"


def needed(r) -> bool:
    return bool(g(r, "rdma"))


def lines(r) -> list[str]:
    """"mlx5_1 hca_handle=3 hca_object=10000" lines (shared with v2)."""
    out = []
    for dev, lim in sorted((g(r, "rdma") or {}).items()):
        parts = [dev]
        h, o = g(lim, "hca_handles"), g(lim, "hca_objects")
        if h is not None:
            parts.append(f"hca_handle={int(h)}")
        if o is not None:
            parts.append(f"hca_object={int(o)}")
        if len(parts) > 1:
            out.append(" ".join(parts))
    return out


def set(path: str, r, mgr) -> None:
    for line in lines(r):
        fs.write(path, "rdma.max", line)


def stats(path: str, st: dict) -> None:
    pass

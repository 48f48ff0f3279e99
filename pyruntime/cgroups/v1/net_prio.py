"""v1 net_prio controller: network.priorities -> net_prio.ifpriomap."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g

NAME = "net_prio"


def needed(r) -> bool:
    return bool(g(g(r, "network"), "priorities"))


def set(path: str, r, mgr) -> None:
    for p in g(g(r, "network"), "priorities") or ():
        fs.write(path, "net_prio.ifpriomap", f"{p.name} {int(p.priority)}")


def stats(path: str, st: dict) -> None:
    pass

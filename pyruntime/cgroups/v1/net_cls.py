"""v1 net_cls controller: network.classID -> net_cls.classid."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g

NAME = "net_cls"


def needed(r) -> bool:
    return g(g(r, "network"), "class_id") is not None


def set(path: str, r, mgr) -> None:
    cid = g(g(r, "network"), "class_id")
    if cid is not None:
        fs.write(path, "net_cls.classid", int(cid))


def stats(path: str, st: dict) -> None:
    pass

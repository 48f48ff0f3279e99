"""v1 freezer: freezer.state FROZEN / THAWED, retried as runc does (a cgroup v1 can get stuck in
FREEZING while processes keep appearing)."""

from __future__ import annotations

import time

from pyruntime.cgroups import fs
from pyruntime.errors import RuntimeFailure

NAME = "freezer"


def set(path: str, r, mgr) -> None:
    pass


def freeze(path: str) -> None:
    try:
        for i in range(1000):
            if i % 50 == 49:
                fs.write(path, "freezer.state", "THAWED")
                time.sleep(0.01)
            fs.write(path, "freezer.state", "FROZEN")
            if i % 25 == 24:
                time.sleep(0.00001)
            state = fs.read(path, "freezer.state").strip()
            if state == "FREEZING":
                continue
            if state == "FROZEN":
                return
            raise RuntimeFailure(f"unexpected state {state} after writing FROZEN to {path}/freezer.state")
        raise RuntimeFailure(f"unable to freeze {path}")
    except BaseException:
        try:
            fs.write(path, "freezer.state", "THAWED")
        except Exception:  # noqa: BLE001
            pass
        raise


def thaw(path: str) -> None:
    fs.write(path, "freezer.state", "THAWED")
    for _ in range(1000):
        if fs.read(path, "freezer.state").strip() == "THAWED":
            return
        time.sleep(0.001)
    raise RuntimeFailure(f"unable to thaw {path}")


def frozen(path: str) -> bool:
    s = (fs.read_or(path, "freezer.state", "") or "").strip()
    if s == "FROZEN":
        # frozen by itself, not only because an ancestor is (runc: self_freezing)
        return (fs.read_or(path, "freezer.self_freezing", "1") or "1").strip() == "1"
    return False


def stats(path: str, st: dict) -> None:
    pass

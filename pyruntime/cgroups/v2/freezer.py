"""v2 freezer: cgroup.freeze, waiting until cgroup.events says frozen 1 (or 0)."""

from __future__ import annotations

import time

from pyruntime.cgroups import fs
from pyruntime.errors import RuntimeFailure, Unsupported

NAME = "freezer"


def _events_frozen(path: str) -> bool:
    return fs.read_keyed(path, "cgroup.events").get("frozen") == 1


def _set(path: str, on: bool, timeout: float = 10.0) -> None:
    if not fs.exists(path, "cgroup.freeze"):
        raise Unsupported("cannot freeze/thaw: this kernel has no cgroup.freeze (needs Linux 5.2+)")
    fs.write(path, "cgroup.freeze", "1" if on else "0")
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while _events_frozen(path) != on:
        if time.monotonic() > deadline:
            if on:
                try:
                    fs.write(path, "cgroup.freeze", "0")
                except Exception:  # noqa: BLE001
                    pass
            raise RuntimeFailure(f"unable to {'freeze' if on else 'thaw'} {path}: timed out")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def freeze(path: str) -> None:
    _set(path, True)


def thaw(path: str) -> None:
    _set(path, False)


def frozen(path: str) -> bool:
    return (fs.read_or(path, "cgroup.freeze", "0") or "0").strip() == "1" and _events_frozen(path)

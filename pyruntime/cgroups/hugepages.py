"""Huge page sizes as the hugetlb cgroup files name them ("2MB", "1GB", "64KB")."""

from __future__ import annotations

import os

from pyruntime.errors import ConfigError, Unsupported


def _name(kb: int) -> str:
    for unit, div in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
        if kb % div == 0 and kb >= div:
            return f"{kb // div}{unit}"
    return f"{kb}KB"


_sizes: tuple[str, ...] | None = None  # read once (functools.cache would import ~2 ms of modules)


def page_sizes() -> tuple[str, ...]:
    global _sizes
    if _sizes is None:
        try:
            names = os.listdir("/sys/kernel/mm/hugepages")
        except OSError:
            names = []
        _sizes = tuple(sorted(_name(int(n[len("hugepages-"):-2])) for n in names
                              if n.startswith("hugepages-") and n.endswith("kB")))
    return _sizes


def check_size(size: str) -> str:
    sizes = page_sizes()
    if not sizes:
        raise Unsupported("cannot set hugepageLimits: this kernel has no huge pages")
    if size not in sizes:
        raise ConfigError(f"invalid hugepage size {size!r} (this kernel has {', '.join(sizes)})")
    return size

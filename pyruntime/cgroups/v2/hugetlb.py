"""v2 hugetlb controller: hugepageLimits -> hugetlb.<size>.max, and hugetlb.<size>.rsvd.max when
the kernel has reservation accounting."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.cgroups.hugepages import check_size, page_sizes

NAME = "hugetlb"


def needed(r) -> bool:
    return bool(g(r, "hugepage_limits"))


def set(path: str, r, mgr) -> None:
    for hp in g(r, "hugepage_limits") or ():
        size = check_size(hp.page_size)
        fs.write(path, f"hugetlb.{size}.max", int(hp.limit))
        fs.try_write(path, f"hugetlb.{size}.rsvd.max", int(hp.limit))


def stats(path: str, st: dict) -> None:
    for size in page_sizes():
        p = f"hugetlb.{size}."
        if not fs.exists(path, p + "current"):
            continue
        usage = fs.read_uint(path, p + "current")
        e = {"failcnt": fs.read_keyed(path, p + "events").get("max", 0)}
        if usage:
            e = {"usage": usage, **e}
        st["hugetlb"][size] = e

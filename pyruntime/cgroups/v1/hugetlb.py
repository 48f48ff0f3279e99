"""v1 hugetlb controller: hugepageLimits -> hugetlb.<size>.limit_in_bytes (and
hugetlb.<size>.rsvd.limit_in_bytes when the kernel has reservation accounting)."""

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
        fs.write(path, f"hugetlb.{size}.limit_in_bytes", int(hp.limit))
        fs.try_write(path, f"hugetlb.{size}.rsvd.limit_in_bytes", int(hp.limit))


def stats(path: str, st: dict) -> None:
    for size in page_sizes():
        p = f"hugetlb.{size}."
        if not fs.exists(path, p + "usage_in_bytes"):
            continue
        st["hugetlb"][size] = {k: v for k, v in (
            ("usage", fs.read_uint(path, p + "usage_in_bytes")),
            ("max", fs.read_uint(path, p + "max_usage_in_bytes")),
            ("failcnt", fs.read_uint(path, p + "failcnt"))) if v or k == "failcnt"}

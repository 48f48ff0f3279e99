"""v1 blkio controller: weight/leafWeight/weightDevice (CFQ blkio.weight* or BFQ blkio.bfq.weight*)
and the throttle.* files."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.errors import Unsupported

NAME = "blkio"

THROTTLE = (("throttle_read_bps_device", "blkio.throttle.read_bps_device"),
            ("throttle_write_bps_device", "blkio.throttle.write_bps_device"),
            ("throttle_read_iops_device", "blkio.throttle.read_iops_device"),
            ("throttle_write_iops_device", "blkio.throttle.write_iops_device"))


def needed(r) -> bool:
    b = g(r, "block_io")
    return b is not None and any(g(b, k) for k in (
        "weight", "leaf_weight", "weight_device", *(a for a, _ in THROTTLE)))


def _weight_files(path: str) -> tuple[str, str] | None:
    if fs.exists(path, "blkio.weight"):
        return "blkio.weight", "blkio.weight_device"
    if fs.exists(path, "blkio.bfq.weight"):
        return "blkio.bfq.weight", "blkio.bfq.weight_device"
    return None


def _no_weight(what: str) -> Unsupported:
    return Unsupported(f"cannot set blockIO.{what}: this kernel has neither blkio.weight (CFQ) nor "
                       "blkio.bfq.weight (BFQ) in the blkio cgroup")


def set(path: str, r, mgr) -> None:
    b = g(r, "block_io")
    if b is None:
        return
    files = None
    weight = g(b, "weight")
    if weight:
        files = _weight_files(path)
        if files is None:
            raise _no_weight("weight")
        fs.write(path, files[0], int(weight))
    lw = g(b, "leaf_weight")
    if lw:
        if not fs.exists(path, "blkio.leaf_weight"):
            raise Unsupported("cannot set blockIO.leafWeight: this kernel has no blkio.leaf_weight (CFQ)")
        fs.write(path, "blkio.leaf_weight", int(lw))
    for wd in g(b, "weight_device") or ():
        w, lwd = g(wd, "weight"), g(wd, "leaf_weight")
        if w:
            files = files or _weight_files(path)
            if files is None:
                raise _no_weight("weightDevice")
            fs.write(path, files[1], f"{wd.major}:{wd.minor} {int(w)}")
        if lwd:
            if not fs.exists(path, "blkio.leaf_weight_device"):
                raise Unsupported("cannot set blockIO.weightDevice leafWeight: this kernel has no "
                                  "blkio.leaf_weight_device (CFQ)")
            fs.write(path, "blkio.leaf_weight_device", f"{wd.major}:{wd.minor} {int(lwd)}")
    for attr, fname in THROTTLE:
        for td in g(b, attr) or ():
            fs.write(path, fname, f"{td.major}:{td.minor} {int(td.rate)}")


def _entries(path: str, name: str) -> list[dict] | None:
    s = fs.read_or(path, name)
    if not s:
        return None
    out = []
    for line in s.splitlines():
        p = line.split()
        if len(p) == 3 and ":" in p[0]:
            ma, mi = p[0].split(":")
            e = {"major": int(ma), "minor": int(mi), "op": p[1], "value": int(p[2])}
        elif len(p) == 2 and ":" in p[0]:
            ma, mi = p[0].split(":")
            e = {"major": int(ma), "minor": int(mi), "value": int(p[1])}
        else:
            continue
        out.append({k: v for k, v in e.items() if v not in (0, "")})
    return out or None


def stats(path: str, st: dict) -> None:
    b = st["blkio"]
    # CFQ files, else BFQ, else the throttle ones (runc GetStats order)
    for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
        sb = _entries(path, prefix + "io_service_bytes_recursive")
        sv = _entries(path, prefix + "io_serviced_recursive")
        if sb or sv or prefix == "blkio.throttle.":
            b["ioServiceBytesRecursive"] = sb
            b["ioServicedRecursive"] = sv
            if prefix == "blkio.":
                b["ioQueueRecursive"] = _entries(path, "blkio.io_queued_recursive")
                b["ioServiceTimeRecursive"] = _entries(path, "blkio.io_service_time_recursive")
                b["ioWaitTimeRecursive"] = _entries(path, "blkio.io_wait_time_recursive")
                b["ioMergedRecursive"] = _entries(path, "blkio.io_merged_recursive")
                b["ioTimeRecursive"] = _entries(path, "blkio.time_recursive")
                b["sectorsRecursive"] = _entries(path, "blkio.sectors_recursive")
            break

"""v2 io controller: blockIO.weight -> io.bfq.weight (or io.weight, converted as runc's
ConvertBlkIOToIOWeightValue), weightDevice -> io.bfq.weight per device, throttle* -> io.max."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import g
from pyruntime.errors import Unsupported

NAME = "io"

THROTTLE = (("throttle_read_bps_device", "rbps"), ("throttle_write_bps_device", "wbps"),
            ("throttle_read_iops_device", "riops"), ("throttle_write_iops_device", "wiops"))


def blkio_weight_to_io_weight(w: int) -> int:
    """[10, 1000] -> [1, 10000]."""
    if w == 0:
        return 0
    return 1 + (w - 10) * 9999 // 990


def needed(r) -> bool:
    b = g(r, "block_io")
    return b is not None and any(g(b, k) for k in ("weight", "leaf_weight", "weight_device",
                                                    *(a for a, _ in THROTTLE)))


def _bfq_per_device(path: str) -> bool:
    """io.bfq.weight shows "default N" (+ per-device lines) on kernels with per-device weights
    (5.4+); older ones show a bare number."""
    s = (fs.read_or(path, "io.bfq.weight", "") or "").strip()
    return bool(s) and not s.isdigit()


def set(path: str, r, mgr) -> None:
    b = g(r, "block_io")
    if b is None:
        return
    if g(b, "leaf_weight") or any(g(wd, "leaf_weight") for wd in g(b, "weight_device") or ()):
        raise Unsupported("cannot set blockIO leafWeight: not supported on cgroup v2")
    w = g(b, "weight")
    bfq = fs.exists(path, "io.bfq.weight")
    if w:
        if bfq:
            fs.write(path, "io.bfq.weight", int(w))
        elif fs.exists(path, "io.weight"):
            fs.write(path, "io.weight", blkio_weight_to_io_weight(int(w)))
        else:
            raise Unsupported("cannot set blockIO.weight: neither io.bfq.weight nor io.weight exists "
                              "(no BFQ scheduler and no io.cost)")
    wds = [wd for wd in g(b, "weight_device") or () if g(wd, "weight")]
    if wds:
        if not (bfq and _bfq_per_device(path)):
            raise Unsupported("cannot set blockIO.weightDevice: this kernel has no per-device BFQ weights "
                              "(io.bfq.weight)")
        for wd in wds:
            fs.write(path, "io.bfq.weight", f"{wd.major}:{wd.minor} {int(wd.weight)}")
    for attr, key in THROTTLE:
        for td in g(b, attr) or ():
            fs.write(path, "io.max", f"{td.major}:{td.minor} {key}={int(td.rate)}")


def stats(path: str, st: dict) -> None:
    s = fs.read_or(path, "io.stat", "") or ""
    sb, sv = [], []
    for line in s.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        ma, mi = (int(x) for x in parts[0].split(":"))
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for key, op, lst in (("rbytes", "Read", sb), ("wbytes", "Write", sb), ("rios", "Read", sv),
                             ("wios", "Write", sv)):
            if key in kv:
                e = {"major": ma, "minor": mi, "op": op, "value": int(kv[key])}
                lst.append({k: v for k, v in e.items() if v not in (0, "")})
    st["blkio"]["ioServiceBytesRecursive"] = sb or None
    st["blkio"]["ioServicedRecursive"] = sv or None

"""Network namespace setup: loopback up (one ioctl, no netlink library needed on the hot
path), and linux.netDevices moved into the container with pyroute2 (spec 1.3)."""

from __future__ import annotations

import fcntl
import os
import struct

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import sockets

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    s = sockets.socket(sockets.AF_INET, sockets.SOCK_DGRAM)
    try:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP) + b"\0" * 22)
    finally:
        s.close()


def move_net_devices(net_devices: dict, netns_pid: int) -> None:
    """Move host interfaces into the container's network namespace (from the host side).

    Permanent global-scope addresses are kept (the spec requires it; a move flushes them, so
    they are read before and re-added inside), the MTU travels with the device, and the device
    is set up. A name already taken inside is an error unless it is a `%d` template.
    """
    if not net_devices:
        return
    from pyroute2 import IPRoute, NetNS  # heavy: only when netDevices are used

    ns_path = f"/proc/{netns_pid}/ns/net"
    with IPRoute() as ipr, NetNS(ns_path) as nns:
        for host_name, dev in net_devices.items():
            new_name = (getattr(dev, "name", None) if not isinstance(dev, dict) else dev.get("name")) or host_name
            idx = ipr.link_lookup(ifname=host_name)
            if not idx:
                raise RuntimeFailure(f"netDevices: host interface {host_name!r} not found")
            for name in {host_name, new_name}:
                if "%d" not in name and nns.link_lookup(ifname=name):
                    raise RuntimeFailure(f"netDevices: an interface named {name!r} already exists "
                                         "in the container's network namespace")
            addrs = [(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx[0])
                     if a.get_attr("IFA_FLAGS", a["flags"]) & IFA_F_PERMANENT
                     and a["scope"] == RT_SCOPE_UNIVERSE]
            fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("set", index=idx[0], net_ns_fd=fd)
            except Exception as e:  # pyroute2 raises NetlinkError
                raise RuntimeFailure(f"netDevices: moving {host_name} into the container: {_nl_error(e)}") from None
            finally:
                os.close(fd)
            try:
                nidx = nns.link_lookup(ifname=host_name)[0]
                if new_name != host_name:
                    nns.link("set", index=nidx, ifname=new_name)
                for addr, plen in addrs:
                    nns.addr("add", index=nidx, address=addr, prefixlen=plen)
                nns.link("set", index=nidx, state="up")
            except Exception as e:  # noqa: BLE001
                raise RuntimeFailure(f"netDevices: setting up {host_name} as {new_name!r} in the "
                                     f"container: {_nl_error(e)}") from None


IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0


def _nl_error(e: Exception) -> str:
    """NetlinkError(code, text) -> 'text' (one line), anything else as is."""
    args = getattr(e, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return str(args[1]).lower()
    if args and isinstance(args[0], int):
        return os.strerror(args[0]).lower()
    return str(e)

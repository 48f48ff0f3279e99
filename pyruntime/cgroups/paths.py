"""Where the cgroup hierarchies are mounted, which cgroup this process is in, and how a
cgroupsPath becomes a directory -- with runc's cgroupfs-driver semantics:

* absolute cgroupsPath: relative to the hierarchy's root (its mount point);
* relative cgroupsPath: relative to the runtime's own cgroup (/proc/self/cgroup) in v1
  hierarchies and in the hybrid unified hierarchy; on a pure v2 host relative to the *parent* of
  the runtime's own cgroup (runc fs2 defaultDirPath: the own cgroup has processes in it, so
  controllers could not be enabled below it);
* no cgroupsPath: the relative path "<container id>" (runc's specconv sets Name=id).
"""

from __future__ import annotations

import os

from pyruntime.cgroups.fs import clean_path


class Mount:
    __slots__ = ("mountpoint", "root", "fstype", "controllers")

    def __init__(self, mountpoint: str, root: str, fstype: str, controllers: tuple[str, ...]):
        self.mountpoint = mountpoint
        self.root = root
        self.fstype = fstype
        self.controllers = controllers

    def __repr__(self) -> str:
        return f"Mount({self.mountpoint!r}, root={self.root!r}, {self.fstype}, {self.controllers})"


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every cgroup/cgroup2 mount; for v1 the controllers (and name=...) come from the options."""
    out = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-")
            except ValueError:
                continue
            fstype = fields[sep + 1]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            root, mnt = _unescape(fields[3]), _unescape(fields[4])
            ctrls: tuple[str, ...] = ()
            if fstype == "cgroup":
                opts = fields[sep + 3].split(",") + fields[5].split(",")
                ctrls = tuple(o for o in dict.fromkeys(opts) if o in V1_CONTROLLERS or o.startswith("name="))
            out.append(Mount(mnt, root, fstype, ctrls))
    return out


# Every v1 controller the kernel may have (name=systemd and other named hierarchies are handled
# separately).
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                  "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc")


def own_cgroups(path: str = "/proc/self/cgroup") -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; the unified entry is under "" and every v1
    controller of a co-mounted hierarchy (cpu,cpuacct) gets its own key."""
    out: dict[str, str] = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            _hid, ctrls, p = line.split(":", 2)
            if ctrls == "":
                out[""] = p
            else:
                for c in ctrls.split(","):
                    out[c] = p
    return out


def inner_path(container_id: str, cgroups_path: str | None) -> str:
    """The cleaned cgroupsPath, or the container id when unset (runc: Path or Parent/Name)."""
    p = clean_path(cgroups_path or "")
    if not p:
        p = clean_path(container_id)
    if ":" in p and not p.startswith("/") and p.count(":") == 2:
        # "slice:prefix:name" is the systemd driver's syntax; runc's cgroupfs driver takes it
        # literally as a directory name, and so do we.
        pass
    return p


def join_in_mount(mount: Mount, cgroup: str) -> str:
    """The directory of cgroup (a path as in /proc/self/cgroup) inside mount, taking the mount's
    root into account (a bind-mounted sub-hierarchy, as inside a container)."""
    rel = os.path.relpath(cgroup, mount.root) if cgroup.startswith(mount.root) else cgroup.lstrip("/")
    if rel == ".":
        rel = ""
    if rel.startswith(".."):
        rel = cgroup.lstrip("/")
    return os.path.join(mount.mountpoint, rel) if rel else mount.mountpoint


def resolve(mount: Mount, inner: str, own: str | None, *, v2_parent: bool = False) -> str:
    """The directory for inner in this hierarchy."""
    if inner.startswith("/"):
        return os.path.normpath(os.path.join(mount.mountpoint, inner.lstrip("/")))
    base = own if own is not None else "/"
    if v2_parent:
        base = os.path.dirname(base) or "/"
    return os.path.normpath(os.path.join(join_in_mount(mount, base), inner))

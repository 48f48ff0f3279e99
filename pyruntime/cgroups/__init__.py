"""Control groups: one Manager interface (pyruntime.cgroups.base.Manager), a v1 implementation
(v1/, also used on hybrid hosts) and a v2 one (v2/), one module per controller; each controller
module is the one place where spec fields become cgroup files.

Entry points:

* ``detect_layout(root)`` -> "v1" | "hybrid" | "unified"
* ``manager_for(container_id, cgroups_path, rootless=, root=)`` -> Manager (nothing touched yet;
  call ``create()`` / ``apply(pid)`` / ``set(resources)``)
* ``manager_from_state(d)`` rebuilds a Manager from ``Manager.to_state()`` (save it in the
  container state; save it again after ``set()``/``allow_device()``, the v2 device rules live
  there); its ``apply`` never makes directories unless ``may_create`` (stage 1 of create)
* ``merge_resources(current, patch)`` for ``update``: the caller passes the merged Resources to
  ``set(..., skip_devices=True)``
* ``FEATURES``: what ``pyruntime features`` reports for cgroups.

This module imports nothing heavy; the eBPF code is imported only when device rules are applied
on v2.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from pyruntime.errors import RuntimeFailure

__all__ = ["detect_layout", "manager_for", "manager_from_state", "merge_resources", "FEATURES"]

CGROUP2_SUPER_MAGIC = 0x63677270

# for `pyruntime features` (runc's features.json "linux.cgroup" object)
FEATURES = {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True}


def _fstype(path: str) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        from pyruntime.linux.syscalls import fstatfs_type
        return fstatfs_type(fd)
    finally:
        os.close(fd)


def detect_layout(root: str = "/sys/fs/cgroup") -> str:
    """"unified" (pure cgroup v2), "hybrid" (v1 controllers + cgroup2 at root/unified) or "v1"."""
    if _fstype(root) == CGROUP2_SUPER_MAGIC:
        return "unified"
    if _fstype(os.path.join(root, "unified")) == CGROUP2_SUPER_MAGIC:
        return "hybrid"
    return "v1"


def manager_for(container_id: str, cgroups_path: str | None, *, rootless: bool = False,
                root: str = "/sys/fs/cgroup"):
    """The Manager for a container, with runc's cgroupfs-driver path semantics (see paths.py)."""
    from pyruntime.cgroups import paths as P

    inner = P.inner_path(container_id, cgroups_path)
    if not inner or inner in ("/", "."):
        raise RuntimeFailure(f"invalid cgroupsPath {cgroups_path!r}: the root cgroup cannot be a container's cgroup")
    layout = detect_layout(root)
    root = os.path.normpath(root)
    mounts = [m for m in P.cgroup_mounts() if m.mountpoint == root or m.mountpoint.startswith(root + "/")]
    own = P.own_cgroups()
    if layout == "unified":
        from pyruntime.cgroups.v2 import V2Manager

        m = next(m for m in mounts if m.fstype == "cgroup2" and m.mountpoint == root)
        d = P.resolve(m, inner, own.get("", "/"), v2_parent=True)
        return V2Manager(container_id, d, root, rootless=rootless)
    from pyruntime.cgroups.v1 import V1Manager

    paths: dict[str, str] = {}
    mps: dict[str, str] = {}
    for m in mounts:
        if m.fstype == "cgroup2":
            if layout == "hybrid" and m.mountpoint == os.path.join(root, "unified"):
                paths[""] = P.resolve(m, inner, own.get(""))
                mps[""] = m.mountpoint
            continue
        for c in m.controllers:
            if c in paths:
                continue
            paths[c] = P.resolve(m, inner, own.get(c))
            mps[c] = m.mountpoint
    return V1Manager(container_id, paths, mps, rootless=rootless, layout=layout, cgroup_path=inner)


def manager_from_state(d: dict, *, may_create: bool = False):
    """The Manager of an existing container's cgroup: its `apply` joins the directories and
    never makes them (an `exec` racing a `delete` must fail, not leave a new cgroup behind).
    may_create: stage 1 of `create`, which makes them as it joins."""
    if d.get("version") == "v2":
        from pyruntime.cgroups.v2 import V2Manager

        m = V2Manager.from_state(d)
    else:
        from pyruntime.cgroups.v1 import V1Manager

        m = V1Manager.from_state(d)
    m._must_exist = not may_create
    return m


def merge_resources(current: Any, patch: Any) -> Any:
    """For `update`: the fields of patch that are set (not None) replace those of current,
    recursively through nested model objects; dicts (unified, rdma) are merged key by key; lists
    (device lists) replace. Works on the model's classes (either form) and on SimpleNamespace."""
    if patch is None:
        return current
    if current is None:
        return patch
    if isinstance(current, dict) and isinstance(patch, dict):
        out = dict(current)
        out.update(patch)
        return out
    names = _fields(patch)
    if not names:
        return patch
    changes = {}
    for n in names:
        pv = getattr(patch, n, None)
        if pv is None:
            continue
        cv = getattr(current, n, None)
        if _fields(pv) or (isinstance(pv, dict) and isinstance(cv, dict)):
            changes[n] = merge_resources(cv, pv)
        else:
            changes[n] = pv
    from pyruntime.spec.node import Node, evolve

    if isinstance(current, Node):
        return evolve(current, **changes)
    import copy

    out = copy.copy(current)
    for k, v in changes.items():
        setattr(out, k, v)
    return out


def _fields(obj: Any) -> list[str]:
    if obj is None or isinstance(obj, (str, bytes, int, float, bool, list, tuple, dict)):
        return []
    from pyruntime.spec.node import Node, field_names

    if isinstance(obj, Node):
        return field_names(obj)
    if hasattr(obj, "__dict__"):
        return list(vars(obj))
    return []

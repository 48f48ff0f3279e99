"""The cgroup v1 manager (also used on hybrid hosts, where processes are additionally put in the
unified hierarchy's matching cgroup, as runc 1.1 does). One module per controller; the manager
only walks them in runc's order."""

from __future__ import annotations

import errno
import os
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import Manager, controller_module, empty_stats, finish_stats, g
from pyruntime.cgroups.devices import Emulator, Rule, container_rules, make_rule
from pyruntime.errors import RuntimeFailure, Unsupported


# runc 1.1 fs.subsystems order (Set walks it in this order)
CONTROLLERS = ('cpuset', 'devices', 'memory', 'cpu', 'cpuacct', 'pids', 'blkio', 'hugetlb', 'net_cls', 'net_prio', 'freezer', 'rdma')




def _ctl(name: str):
    return controller_module(__name__, name)


def _controllers() -> list:
    return [_ctl(n) for n in CONTROLLERS]
# hierarchies a process joins although no resource is set there
JOIN_ONLY = ("perf_event", "misc", "name=systemd")

_PERM = (errno.EACCES, errno.EPERM, errno.EROFS)


class V1Manager(Manager):
    version = "v1"

    def __init__(self, container_id: str, paths: dict[str, str], mountpoints: dict[str, str], *,
                 rootless: bool = False, layout: str = "v1", cgroup_path: str = "",
                 device_rules: list[dict] | None = None):
        self.container_id = container_id
        self._paths = dict(paths)            # controller (or "" = unified, name=...) -> dir
        self._mounts = dict(mountpoints)     # controller -> mount point
        self.rootless = rootless
        self.layout = layout
        self._cgroup_path = cgroup_path
        self._devices = Emulator.from_rules([Rule.from_dict(d) for d in device_rules]) \
            if device_rules is not None else None
        self._must_exist = False

    def sub(self, spec: "str | list[str]") -> "V1Manager":
        """A manager that joins (only) a sub-cgroup of this one, for `exec --cgroup`: "path"
        (every hierarchy) or "ctrl[,ctrl]:path" (repeatable; other hierarchies stay the
        container's). The sub-cgroup must exist."""
        subs = parse_sub_cgroups(spec)
        paths = {}
        for ctrl, d in self._paths.items():
            rel = subs.get(ctrl, subs.get("")) if ctrl else subs.get("")
            paths[ctrl] = os.path.join(d, rel) if rel else d
        unknown = set(subs) - set(self._paths) - {""}
        if unknown:
            raise RuntimeFailure(f"invalid --cgroup argument: controller {sorted(unknown)[0]} is not mounted")
        m = V1Manager(self.container_id, paths, self._mounts, rootless=self.rootless, layout=self.layout)
        m._must_exist = True
        return m

    # --- paths -------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The cgroup path as /proc/PID/cgroup shows it: the unified one on hybrid hosts, else
        the devices (or first) hierarchy's."""
        for c in ("", "devices", *self._paths):
            if c in self._paths and c in self._mounts:
                rel = os.path.relpath(self._paths[c], self._mounts[c])
                return "/" if rel == "." else "/" + rel
        return self._cgroup_path

    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def _dirs(self) -> list[str]:
        return list(dict.fromkeys(self._paths.values()))

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs())

    def _need(self, ctrl: str, what: str) -> str:
        p = self._paths.get(ctrl)
        if p is None:
            if self.rootless and ctrl in self._mounts:
                raise Unsupported(f"cannot set {what}: rootless container has no write access to the "
                                  f"{ctrl} cgroup")
            raise Unsupported(f"cannot set {what}: the {ctrl} cgroup controller is not mounted on this host")
        return p

    # --- lifecycle ---------------------------------------------------------------------------
    def create(self) -> None:
        for ctrl, d in list(self._paths.items()):
            try:
                fs.mkdir_p(d)
                if ctrl == "cpuset":
                    _ctl("cpuset").prepare(d, self._mounts["cpuset"])
            except fs.CgroupError as e:
                if self.rootless and not os.path.isdir(d):
                    from pyruntime.log import debug

                    debug(f"rootless: skipping the {ctrl or 'unified'} cgroup ({e})")
                    del self._paths[ctrl]
                    continue
                raise e

    def apply(self, pid: int) -> None:
        if self._must_exist:
            missing = [d for d in self._dirs() if not os.path.isdir(d)]
            if missing:
                raise RuntimeFailure(f"cannot join cgroup {missing[0]}: it does not exist")
        elif not all(os.path.isdir(d) for d in self._dirs()):
            self.create()
        done: set[str] = set()
        for ctrl, d in list(self._paths.items()):
            if d in done:
                continue
            try:
                fs.write(d, "cgroup.procs", pid)
            except fs.WriteError as e:
                if self.rootless and e.errno in _PERM:
                    from pyruntime.log import debug

                    debug(f"rootless: cannot join the {ctrl or 'unified'} cgroup {d}: {os.strerror(e.errno)}")
                    del self._paths[ctrl]
                    continue
                raise RuntimeFailure(f"cannot join cgroup {d}: {os.strerror(e.errno)}") from None
            done.add(d)

    def load_controllers(self) -> None:
        _controllers()

    def set(self, resources: Any, *, linux_devices: Iterable = (), skip_devices: bool = False) -> None:
        r = resources
        if g(r, "unified"):
            raise Unsupported("invalid configuration: cannot use unified on cgroup v1")
        for mod in _controllers():
            if mod.NAME == "devices":
                if not skip_devices and not self.rootless and "devices" in self._paths:
                    self._set_devices(container_rules(g(r, "devices"), linux_devices))
                elif not skip_devices and g(r, "devices") and not self.rootless:
                    raise Unsupported("cannot set device rules: the devices cgroup controller is not mounted")
                continue
            needed = getattr(mod, "needed", None)
            if needed is None or not needed(r):
                continue
            mod.set(self._need(mod.NAME, _WHAT.get(mod.NAME, mod.NAME)), r, self)

    def _set_devices(self, rules: list[Rule]) -> None:
        self._devices = _ctl("devices").set_rules(self._paths["devices"], rules)

    def device_rules(self) -> list[dict] | None:
        return self._devices.to_list() if self._devices is not None else None

    def allow_device(self, type: str, major: int, minor: int, access: str = "rwm") -> None:
        self._device_rule(make_rule(True, type, major, minor, access, "allow_device"))

    def deny_device(self, type: str, major: int, minor: int, access: str = "rwm") -> None:
        self._device_rule(make_rule(False, type, major, minor, access, "deny_device"))

    def _device_rule(self, rule: Rule) -> None:
        p = self._need("devices", "device rules")
        _ctl("devices").write_rule(p, rule)
        if self._devices is None:
            self._devices = Emulator.from_devices_list(fs.read(p, "devices.list"))
        else:
            self._devices.apply(rule)

    # --- freezer -----------------------------------------------------------------------------
    def _freezer(self) -> str:
        p = self._paths.get("freezer")
        if p is None:
            raise Unsupported("cannot freeze/thaw: the freezer cgroup controller is not mounted on this host")
        return p

    def freeze(self) -> None:
        _ctl("freezer").freeze(self._freezer())

    def thaw(self) -> None:
        _ctl("freezer").thaw(self._freezer())

    def frozen(self) -> bool:
        p = self._paths.get("freezer")
        return p is not None and _ctl("freezer").frozen(p)

    # --- queries -----------------------------------------------------------------------------
    def pids(self) -> list[int]:
        out: set[int] = set()
        for d in self._dirs():
            out.update(fs.pids_recursive(d))
        return sorted(out)

    def stats(self) -> dict:
        st = empty_stats()
        for mod in _controllers():
            p = self._paths.get(mod.NAME)
            if p is not None and os.path.isdir(p):
                mod.stats(p, st)
        return finish_stats(st)

    def oom_kill_count(self) -> int:
        p = self._paths.get("memory")
        return _ctl("memory").oom_kill_count(p) if p else 0

    def _remove_dirs(self) -> None:
        errors = []
        for d in self._dirs():
            try:
                fs.rmdir_tree(d)
            except fs.CgroupError as e:
                errors.append(str(e))
        if errors:
            raise fs.CgroupError("; ".join(errors))

    def to_state(self) -> dict:
        return {"version": "v1", "layout": self.layout, "id": self.container_id, "path": self._cgroup_path,
                "paths": dict(self._paths), "mounts": dict(self._mounts), "rootless": self.rootless,
                "devices": self.device_rules()}

    @classmethod
    def from_state(cls, d: dict) -> "V1Manager":
        return cls(d["id"], d["paths"], d.get("mounts", {}), rootless=d.get("rootless", False),
                   layout=d.get("layout", "v1"), cgroup_path=d.get("path", ""), device_rules=d.get("devices"))


def parse_sub_cgroups(spec: "str | list[str]") -> dict[str, str]:
    """runc's getSubCgroupPaths: ["path"] or ["ctrl[,ctrl]:path", ...] -> {ctrl or "": path}."""
    args = [spec] if isinstance(spec, str) else list(spec)
    out: dict[str, str] = {}
    for a in args:
        parts = a.split(":")
        if len(parts) > 2:
            raise RuntimeFailure(f"invalid --cgroup argument: {a}")
        if len(parts) == 1:
            if len(args) != 1:
                raise RuntimeFailure(f"invalid --cgroup argument: {a} (missing <controller>: prefix)")
            ctrls, path = [""], a
        else:
            ctrls, path = parts[0].split(","), parts[1]
        rel = os.path.normpath(path.strip("/")) if path.strip("/") else ""
        if rel.startswith("..") or rel == ".":
            raise RuntimeFailure(f"invalid --cgroup argument: {a} (must be below the container's cgroup)")
        for c in ctrls:
            if c == "" and len(parts) == 2:
                raise RuntimeFailure(f"invalid --cgroup argument: {a} (empty <controller> prefix)")
            if c in out:
                raise RuntimeFailure(f"invalid --cgroup argument(s): controller {c} specified multiple times")
            out[c] = rel
    return out


_WHAT = {"memory": "memory limits", "cpu": "cpu limits", "cpuset": "cpu.cpus/cpu.mems", "pids": "pids.limit",
         "blkio": "blockIO limits", "hugetlb": "hugepageLimits", "net_cls": "network.classID",
         "net_prio": "network.priorities", "rdma": "rdma limits"}

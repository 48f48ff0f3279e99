"""The cgroup v2 manager (pure unified hosts). One module per controller; device rules become an
eBPF program (ebpf.py, imported lazily)."""

from __future__ import annotations

import errno
import os
from _signal import SIGKILL  # the C module: `signal` builds IntEnums at import
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

from pyruntime.cgroups import fs
from pyruntime.cgroups.base import Manager, controller_module, empty_stats, finish_stats, g
from pyruntime.cgroups.devices import Emulator, Rule, container_rules, make_rule
from pyruntime.errors import RuntimeFailure, Unsupported


# runc fs2 Set order
CONTROLLERS = ('pids', 'memory', 'io', 'cpu', 'cpuset', 'hugetlb', 'rdma')




def _ctl(name: str):
    return controller_module(__name__, name)


def _controllers() -> list:
    return [_ctl(n) for n in CONTROLLERS]
_PERM = (errno.EACCES, errno.EPERM, errno.EROFS)


class V2Manager(Manager):
    version = "v2"

    def __init__(self, container_id: str, path: str, mountpoint: str = "/sys/fs/cgroup", *,
                 rootless: bool = False, device_rules: list[dict] | None = None):
        self.container_id = container_id
        self.dir = os.path.normpath(path)
        self.mountpoint = os.path.normpath(mountpoint)
        self.rootless = rootless
        self._no_access = False
        self._devices = Emulator.from_rules([Rule.from_dict(d) for d in device_rules]) \
            if device_rules is not None else None
        self._must_exist = False

    def sub(self, spec: "str | list[str]") -> "V2Manager":
        """A manager that joins (only) an existing sub-cgroup, for `exec --cgroup` ("path";
        a "ctrl:path" form is accepted, its controllers are meaningless on v2)."""
        from pyruntime.cgroups.v1 import parse_sub_cgroups

        paths = set(parse_sub_cgroups(spec).values())
        if len(paths) != 1:
            raise RuntimeFailure("invalid --cgroup argument(s): cgroup v2 has one hierarchy, give one path")
        m = V2Manager(self.container_id, os.path.join(self.dir, paths.pop()), self.mountpoint,
                      rootless=self.rootless)
        m._must_exist = True
        return m

    @property
    def path(self) -> str:
        rel = os.path.relpath(self.dir, self.mountpoint)
        return "/" if rel == "." else "/" + rel

    def paths(self) -> dict[str, str]:
        return {"": self.dir}

    def freezer_state_file(self) -> str | None:
        return os.path.join(self.dir, "cgroup.events")

    def _dirs(self) -> list[str]:
        return [self.dir]

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def available(self) -> set[str]:
        return set((fs.read_or(self.dir, "cgroup.controllers", "") or "").split())

    # --- lifecycle ---------------------------------------------------------------------------
    def create(self) -> None:
        """mkdir -p, enabling in every ancestor's cgroup.subtree_control all the controllers it
        has (runc CreateCgroupPath); a level with processes in it refuses (EBUSY), which is left
        for set() to report when a controller that is then missing is needed."""
        if not self.dir.startswith(self.mountpoint + "/"):
            raise RuntimeFailure(f"invalid cgroup path {self.dir}: not under {self.mountpoint}")
        rel = os.path.relpath(self.dir, self.mountpoint).split("/")
        cur = self.mountpoint
        levels = [cur] + [cur := os.path.join(cur, p) for p in rel]
        for i, d in enumerate(levels):
            if i > 0 and not os.path.isdir(d):
                try:
                    os.mkdir(d, 0o755)
                except FileExistsError:
                    pass
                except OSError as e:
                    if self.rootless and e.errno in _PERM:
                        self._no_access = True
                        return
                    raise fs.CgroupError(f"create cgroup {d}: {e.strerror}") from None
            if i > 0:
                t = (fs.read_or(d, "cgroup.type", "") or "").strip()
                if t in ("domain invalid", "threaded", "domain threaded"):
                    raise RuntimeFailure(f"cannot enter cgroupv2 {d}: it is in {t!r} mode")
            if i < len(levels) - 1:
                self._enable_controllers(d)

    @staticmethod
    def _enable_controllers(d: str) -> None:
        avail = (fs.read_or(d, "cgroup.controllers", "") or "").split()
        enabled = set((fs.read_or(d, "cgroup.subtree_control", "") or "").split())
        want = [c for c in avail if c not in enabled]
        if not want:
            return
        try:
            fs.write(d, "cgroup.subtree_control", " ".join("+" + c for c in want))
        except fs.CgroupError:
            for c in want:
                try:
                    fs.write(d, "cgroup.subtree_control", "+" + c)
                except fs.CgroupError:
                    pass

    def apply(self, pid: int) -> None:
        if self._must_exist:
            if not os.path.isdir(self.dir):
                raise RuntimeFailure(f"cannot join cgroup {self.dir}: it does not exist")
        elif not os.path.isdir(self.dir):
            self.create()
        if self._no_access:
            return
        try:
            fs.write(self.dir, "cgroup.procs", pid)
        except fs.WriteError as e:
            if self.rootless and e.errno in _PERM:
                self._no_access = True
                return
            raise RuntimeFailure(f"cannot join cgroup {self.dir}: {os.strerror(e.errno)}") from None

    def load_controllers(self) -> None:
        _controllers()

    def set(self, resources: Any, *, linux_devices: Iterable = (), skip_devices: bool = False) -> None:
        r = resources
        net = g(r, "network")
        if net is not None and (g(net, "class_id") is not None or g(net, "priorities")):
            raise Unsupported("cannot set network.classID/priorities: net_cls and net_prio do not exist "
                              "on cgroup v2")
        if self._no_access:
            if any(mod.needed(r) for mod in _controllers()) or g(r, "unified"):
                raise Unsupported(f"cannot set cgroup limits: rootless container has no write access to {self.dir}")
            return
        avail = self.available()
        for mod in _controllers():
            if not mod.needed(r):
                continue
            if mod.NAME not in avail:
                raise Unsupported(f"cannot set {mod.NAME} limits: the {mod.NAME} controller is not "
                                  f"available in {self.dir} (cgroup.controllers)")
            mod.set(self.dir, r, self)
        if not skip_devices and not self.rootless:
            self._devices = _ctl("devices").set_rules(self.dir, container_rules(g(r, "devices"), linux_devices))
        u = g(r, "unified")
        if u:
            _ctl("unified").set(self.dir, u, avail)

    def device_rules(self) -> list[dict] | None:
        return self._devices.to_list() if self._devices is not None else None

    def allow_device(self, type: str, major: int, minor: int, access: str = "rwm") -> None:
        self._device_rule(make_rule(True, type, major, minor, access, "allow_device"))

    def deny_device(self, type: str, major: int, minor: int, access: str = "rwm") -> None:
        self._device_rule(make_rule(False, type, major, minor, access, "deny_device"))

    def _device_rule(self, rule: Rule) -> None:
        if self._devices is None:
            raise RuntimeFailure("cannot change device rules: the container's device rules are not known "
                                 "(set() was not called on this manager or its state)")
        emu = Emulator(self._devices.default_allow, self._devices.rules)
        emu.apply(rule)
        _ctl("devices").install(self.dir, emu)
        self._devices = emu

    # --- freezer -----------------------------------------------------------------------------
    def freeze(self) -> None:
        _ctl("freezer").freeze(self.dir)

    def thaw(self) -> None:
        _ctl("freezer").thaw(self.dir)

    def frozen(self) -> bool:
        return _ctl("freezer").frozen(self.dir)

    # --- queries -----------------------------------------------------------------------------
    def pids(self) -> list[int]:
        return fs.pids_recursive(self.dir)

    def kill_all(self, sig: int = SIGKILL) -> None:
        if sig == SIGKILL and fs.exists(self.dir, "cgroup.kill"):
            fs.write(self.dir, "cgroup.kill", "1")
            return
        super().kill_all(sig)

    def stats(self) -> dict:
        st = empty_stats()
        if self.exists():
            for mod in map(_ctl, ("cpu", "memory", "pids", "io", "hugetlb", "cpuset")):
                mod.stats(self.dir, st)
        return finish_stats(st)

    def oom_kill_count(self) -> int:
        return _ctl("memory").oom_kill_count(self.dir)

    def cgroup_fd_v2(self) -> int | None:
        return os.open(self.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def _remove_dirs(self) -> None:
        fs.rmdir_tree(self.dir)

    def to_state(self) -> dict:
        return {"version": "v2", "layout": "unified", "id": self.container_id, "path": self.path,
                "dir": self.dir, "mountpoint": self.mountpoint, "rootless": self.rootless,
                "devices": self.device_rules()}

    @classmethod
    def from_state(cls, d: dict) -> "V2Manager":
        return cls(d["id"], d["dir"], d.get("mountpoint", "/sys/fs/cgroup"), rootless=d.get("rootless", False),
                   device_rules=d.get("devices"))

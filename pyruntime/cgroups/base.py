"""The one cgroup Manager interface (implemented by v1.V1Manager and v2.V2Manager) and the helpers
every controller module uses."""

from __future__ import annotations

import abc
import os
from _signal import SIGKILL  # the C module: `signal` builds IntEnums at import
import time
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable


def controller_module(package: str, name: str):
    """A controller's module (pyruntime.cgroups.v1.memory ...), imported when first used:
    `delete`, `pause` or `kill --all` need none or one of them, not all of them."""
    return __import__(f"{package}.{name}", fromlist=["NAME"])  # not importlib: ~0.4 ms to import


def g(obj: Any, name: str) -> Any:
    """A field of the spec model (or a stand-in object), None when absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def empty_stats() -> dict:
    """runc `events --stats` data (types.Stats), before zero values are dropped."""
    entry = {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}
    return {
        "cpu": {"usage": {"total": 0, "percpu": None, "percpu_kernel": None, "percpu_user": None,
                          "kernel": 0, "user": 0},
                "throttling": {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}},
        "cpuset": {"cpus": None, "cpu_exclusive": 0, "mems": None, "mem_hardwall": 0, "mem_exclusive": 0,
                   "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                   "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0},
        "memory": {"cache": 0, "usage": dict(entry), "swap": dict(entry), "kernel": dict(entry),
                   "kernelTCP": dict(entry), "raw": None},
        "pids": {"current": 0, "limit": 0},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }


# json fields with `omitempty` in runc's types.Stats (zero / empty values are left out)
_OMIT = {"total", "percpu", "percpu_kernel", "percpu_user", "periods", "throttledPeriods", "throttledTime",
         "cpus", "mems", "cache", "usage", "max", "raw", "current", "psi"}
_OMIT_IN = {"pids": {"current", "limit"}}


def finish_stats(st: dict) -> dict:
    """Apply Go's omitempty the way runc's JSON encoding does."""
    def clean(d: dict, parent: str = "") -> dict:
        out = {}
        omit = _OMIT | _OMIT_IN.get(parent, set())
        for k, v in d.items():
            if isinstance(v, dict) and parent not in ("hugetlb", "raw") and k not in ("raw",):
                v = clean(v, k)
            if k in omit and (v is None or v == 0 or v == [] or (v == {} and k == "raw")):
                if not (k == "usage" and isinstance(v, dict)):
                    continue
            out[k] = v
        return out

    st = clean(st)
    for k, e in list(st.get("blkio", {}).items()):
        if not e:
            del st["blkio"][k]
    return st


class Manager(abc.ABC):
    """A container's cgroup(s). Build one with pyruntime.cgroups.manager_for() or
    manager_from_state(); never instantiate directly."""

    version: str = ""          # "v1" (also used for hybrid hosts) or "v2"
    container_id: str
    rootless: bool

    @property
    @abc.abstractmethod
    def path(self) -> str:
        """The main cgroup path (as in /proc/PID/cgroup, e.g. "/mycontainer"), for state."""

    @abc.abstractmethod
    def create(self) -> None:
        """mkdir -p the cgroup(s); on v2 enable the needed controllers in the parents."""

    @abc.abstractmethod
    def apply(self, pid: int) -> None:
        """Move pid into the cgroup(s) (creating them if needed)."""

    @abc.abstractmethod
    def load_controllers(self) -> None:
        """Import the controller modules `set` walks, ahead of time (`create` does it while the
        init joins the cgroup)."""

    @abc.abstractmethod
    def set(self, resources: Any, *, linux_devices: Iterable = (), skip_devices: bool = False) -> None:
        """Apply a spec Resources. Device rules are resources.devices followed by runc's default
        allowed devices (see pyruntime.cgroups.devices); skip_devices leaves the device cgroup as
        it is (use it for `update`, which has no device rules)."""

    @abc.abstractmethod
    def freeze(self) -> None: ...

    @abc.abstractmethod
    def thaw(self) -> None: ...

    @abc.abstractmethod
    def frozen(self) -> bool: ...

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """All processes in the cgroup and its descendants."""

    @abc.abstractmethod
    def stats(self) -> dict:
        """runc `events --stats` "data" (types.Stats JSON)."""

    @abc.abstractmethod
    def oom_kill_count(self) -> int: ...

    @abc.abstractmethod
    def to_state(self) -> dict: ...

    @abc.abstractmethod
    def allow_device(self, type: str, major: int, minor: int, access: str = "rwm") -> None: ...

    @abc.abstractmethod
    def deny_device(self, type: str, major: int, minor: int, access: str = "rwm") -> None: ...

    @abc.abstractmethod
    def _remove_dirs(self) -> None: ...

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the main cgroup directory exists."""

    def cgroup_fd_v2(self) -> int | None:
        """An O_PATH|O_DIRECTORY fd of the v2 cgroup (for clone3 CLONE_INTO_CGROUP), or None."""
        return None

    def paths(self) -> dict[str, str]:
        """{controller: directory}; "" is the unified hierarchy."""
        return {}

    def freezer_state_file(self) -> str | None:
        """The file that says whether the cgroup is frozen, recorded in the container state so
        that `state` can tell paused from running without importing this package (v1:
        freezer.state; v2 overrides: cgroup.events)."""
        d = self.paths().get("freezer")
        return os.path.join(d, "freezer.state") if d else None

    # --- common implementations ------------------------------------------------------------
    def kill_all(self, sig: int = SIGKILL) -> None:
        """Signal every process (runc signalAllProcesses): freeze, signal each, thaw, so nothing
        forks in between. Waiting for the processes is the caller's business."""
        if not self.exists():
            return
        try:
            self.freeze()
        except Exception as e:  # noqa: BLE001 -- runc only warns
            from pyruntime.log import warn
            warn(f"kill_all: freeze failed: {e}")
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            try:
                self.thaw()
            except Exception as e:  # noqa: BLE001
                from pyruntime.log import warn
                warn(f"kill_all: thaw failed: {e}")

    @abc.abstractmethod
    def _dirs(self) -> list[str]:
        """The container's cgroup directories (one per hierarchy; one on v2)."""

    def _remove_if_empty(self) -> bool:
        """The common case, a stopped container without child cgroups: one rmdir per directory
        (the kernel refuses, EBUSY, while a process or a child cgroup is in it). False when
        something is still there: destroy then kills, waits and removes children."""
        for d in self._dirs():
            try:
                os.rmdir(d)
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return True

    def destroy(self, timeout: float = 10.0) -> None:
        """SIGKILL what is left, wait for the cgroup to be empty, remove every directory
        (children first, with retries). Idempotent."""
        if self._remove_if_empty():
            return
        deadline = time.monotonic() + timeout
        if self.exists() and self.pids():
            self.kill_all(SIGKILL)
            delay = 0.001
            while self.pids() and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self._remove_dirs()

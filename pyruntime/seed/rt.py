"""Real-time CPU budget for `up --rt-priority` on cgroup v1 with RT group scheduling.

With CONFIG_RT_GROUP_SCHED every cgroup has cpu.rt_runtime_us, 0 for a new one, and a task
can only become SCHED_RR/SCHED_FIFO in a cgroup with budget; a cgroup's budget must fit in its
parent's (the sum of the children's runtime/period ratios cannot exceed the parent's). The
container's own budget is an ordinary spec field (linux.resources.cpu.realtimeRuntime), but
its ancestors between the hierarchy's root and the container (a --cgroup-parent) start with 0,
so `up` creates them and raises their budget to what their children need. Budgets are only
ever raised, never lowered, and only below the hierarchy's root.
"""

from __future__ import annotations

import os

from pyruntime.errors import RuntimeFailure

DEFAULT_RUNTIME_US = 50_000  # per the default 1 s period: 5% of a CPU


def cpu_rt_dir(cid: str, cgroups_path: str | None) -> tuple[str, str] | None:
    """(container's cpu cgroup dir, the cpu hierarchy's mount point) when RT group scheduling
    is there to deal with, else None (cgroup v2, or a kernel without RT_GROUP_SCHED)."""
    from pyruntime import cgroups
    from pyruntime.cgroups.paths import cgroup_mounts

    if cgroups.detect_layout() == "unified":
        return None
    mp = next((m.mountpoint for m in cgroup_mounts() if m.fstype == "cgroup" and "cpu" in m.controllers), None)
    if mp is None or not os.path.exists(os.path.join(mp, "cpu.rt_runtime_us")):
        return None
    d = cgroups.manager_for(cid, cgroups_path).paths().get("cpu")
    return (d, mp) if d else None


def _read(d: str) -> int:
    try:
        with open(os.path.join(d, "cpu.rt_runtime_us")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def ensure_ancestors(cpu_dir: str, mountpoint: str, runtime: int) -> None:
    """mkdir -p the ancestors of cpu_dir below mountpoint and give each enough RT budget for
    its children plus `runtime` for the path down to the container."""
    rel = os.path.relpath(cpu_dir, mountpoint)
    if rel.startswith(".."):
        raise RuntimeFailure(f"cgroup {cpu_dir} is not under {mountpoint}")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    ancestors = [os.path.join(mountpoint, *parts[:i]) for i in range(1, len(parts))]
    for d in ancestors:
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            pass
        except OSError as e:
            raise RuntimeFailure(f"create cgroup {d}: {e.strerror}") from None
    plan = []
    need, child = runtime, parts[-1]
    for d in reversed(ancestors):
        others = 0
        for name in os.listdir(d):
            sub = os.path.join(d, name)
            if name != child and os.path.isdir(sub):
                others += _read(sub)
        need += others
        plan.append((d, need))
        child = os.path.basename(d)
    for d, want in reversed(plan):
        if _read(d) >= want:
            continue
        try:
            with open(os.path.join(d, "cpu.rt_runtime_us"), "w") as f:
                f.write(str(want))
        except OSError as e:
            raise RuntimeFailure(f"cannot give cgroup {d} a real-time budget of {want}us: {e.strerror} "
                                 f"(the parent's cpu.rt_runtime_us is too small?)") from None

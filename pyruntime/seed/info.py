"""`inspect`: everything known about a container as one JSON object.

From the state record: id, bundle, rootfs, the overlay layers `up` made, times, the config.
From the live system: status, the init's pid, every pid in the cgroup, the namespaces of the
init with their inode numbers (and whether each is the host's, i.e. the inspecting process's),
the cgroup's current usage (through the cgroup Manager).
"""

from __future__ import annotations

import os

from pyruntime.container.status import STOPPED


def namespaces(pid: int) -> dict:
    """{ns name: {"inode": n, "host": shared with the caller}} from /proc/<pid>/ns/*."""
    out = {}
    try:
        names = sorted(os.listdir(f"/proc/{pid}/ns"))
    except OSError:
        return out
    for name in names:
        try:
            ino = os.stat(f"/proc/{pid}/ns/{name}").st_ino
        except OSError:
            continue
        try:
            mine = os.stat(f"/proc/self/ns/{name}").st_ino
        except OSError:
            mine = None
        out[name] = {"inode": ino, "host": ino == mine}
    return out


def cgroup_info(record: dict) -> dict | None:
    from pyruntime.container.lifecycle import cgroup_of

    mgr = cgroup_of(record)
    if mgr is None:
        return None
    out: dict = {"version": mgr.version, "path": mgr.path, "paths": mgr.paths(), "exists": mgr.exists()}
    if not out["paths"]:
        out["note"] = "no cgroup: a rootless container cannot create cgroups here"
        return out
    if not out["exists"]:
        return out
    try:
        out["pids"] = mgr.pids()
    except Exception as e:  # noqa: BLE001 - inspect reports what it can
        out["pids_error"] = str(e)
    try:
        st = mgr.stats()
    except Exception as e:  # noqa: BLE001
        out["stats_error"] = str(e)
        return out
    mem = st.get("memory", {}).get("usage", {})
    out["memory"] = {"usage": mem.get("usage", 0), "max_usage": mem.get("max", 0),
                     "limit": mem.get("limit", 0), "failcnt": mem.get("failcnt", 0)}
    pids = st.get("pids", {})
    out["pids_current"] = pids.get("current", 0)
    if pids.get("limit"):
        out["pids_limit"] = pids["limit"]
    out["cpu_usage_ns"] = st.get("cpu", {}).get("usage", {}).get("total", 0)
    if mgr.version == "v1":
        try:
            out["devices"] = mgr.device_rules()
        except Exception:  # noqa: BLE001
            pass
    return out


def config_summary(cfg: dict) -> dict:
    proc = cfg.get("process") or {}
    linux = cfg.get("linux") or {}
    res = linux.get("resources") or {}
    cpu = res.get("cpu") or {}
    limits = {
        "memory": (res.get("memory") or {}).get("limit"),
        "memory_swap": (res.get("memory") or {}).get("swap"),
        "cpus": cpu.get("cpus"),
        "mems": cpu.get("mems"),
        "cpu_shares": cpu.get("shares"),
        "cpu_quota": cpu.get("quota"),
        "cpu_period": cpu.get("period"),
        "cpu_rt_runtime": cpu.get("realtimeRuntime"),
        "pids": (res.get("pids") or {}).get("limit"),
    }
    return {
        "args": proc.get("args"),
        "env": proc.get("env"),
        "cwd": proc.get("cwd"),
        "terminal": proc.get("terminal", False),
        "user": proc.get("user"),
        "hostname": cfg.get("hostname"),
        "root": cfg.get("root"),
        "limits": {k: v for k, v in limits.items() if v is not None},
        "rlimits": proc.get("rlimits"),
        "scheduler": proc.get("scheduler"),
        "exec_cpu_affinity": proc.get("execCPUAffinity"),
        "capabilities": (proc.get("capabilities") or {}).get("bounding"),
        "no_new_privileges": proc.get("noNewPrivileges", False),
        "namespaces": linux.get("namespaces"),
        "uid_mappings": linux.get("uidMappings"),
        "gid_mappings": linux.get("gidMappings"),
        "cgroups_path": linux.get("cgroupsPath"),
        "mounts": [{k: m.get(k) for k in ("destination", "type", "source", "options") if m.get(k) is not None}
                   for m in cfg.get("mounts") or ()],
        "devices": linux.get("devices") or [],
        "device_rules": res.get("devices") or [],
    }


def inspect(record: dict, stat: str) -> dict:
    from pyruntime.seed.bundle import layers_of

    live = stat != STOPPED
    pid = record.get("pid", 0) if live else 0
    out = {
        "id": record["id"],
        "status": stat,
        "pid": pid,
        "pids": [],
        "bundle": record.get("bundle"),
        "rootfs": record.get("rootfs"),
        "overlay": layers_of(record),
        "created": record.get("created"),
        "started": record.get("started"),
        "owner": record.get("owner"),
        "rootless": record.get("rootless", False),
        "annotations": record.get("annotations") or {},
        "namespaces": namespaces(pid) if pid else {},
        "cgroup": None,
        "config": config_summary(record.get("config") or {}),
    }
    cg = cgroup_info(record)
    out["cgroup"] = cg
    if cg is not None and "pids" in cg:
        out["pids"] = cg.pop("pids")
    elif pid:
        out["pids"] = _pids_in_pidns(pid)
    return out


def _pids_in_pidns(pid: int) -> list[int]:
    """Without a cgroup (rootless on v1): the processes in the init's pid namespace."""
    try:
        target = os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return []
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}/ns/pid").st_ino == target:
                out.append(int(name))
        except OSError:
            continue
    return sorted(out)

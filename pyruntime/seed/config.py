"""The OCI config `up` generates: `pyruntime spec`'s default (rootless when unprivileged), with
the command line's options mapped onto spec fields."""

from __future__ import annotations

import os
import re

import attrs

from pyruntime.errors import UsageError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str) -> int:
    """'64m', '1g', '512k', '1048576' (binary units, as docker) -> bytes."""
    m = _SIZE.match(text.strip())
    if not m:
        raise UsageError(f"invalid size {text!r} (use e.g. 64m, 1g, 512k or bytes)")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise UsageError(f"invalid size {text!r}: must be positive")
    return n


def parse_cpus(text: str) -> str:
    from pyruntime.errors import RuntimeFailure
    from pyruntime.linux.process import parse_cpu_list

    try:
        if not parse_cpu_list(text):
            raise RuntimeFailure("empty")
    except RuntimeFailure:
        raise UsageError(f"invalid --cpus {text!r} (a CPU list such as 0, 0-1 or 0,2)") from None
    return text.strip()


@attrs.frozen
class Volume:
    source: str
    destination: str
    readonly: bool


def parse_volume(text: str) -> Volume:
    parts = text.split(":")
    ro = False
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        ro = parts[2] == "ro"
        parts = parts[:2]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise UsageError(f"invalid --volume {text!r} (SRC:DST[:ro])")
    src, dst = os.path.abspath(parts[0]), parts[1]
    if not dst.startswith("/"):
        raise UsageError(f"invalid --volume {text!r}: the destination must be an absolute path")
    if not os.path.exists(src):
        raise UsageError(f"invalid --volume {text!r}: {src} does not exist")
    return Volume(src, dst, ro)


@attrs.frozen
class UpOptions:
    cid: str
    args: tuple[str, ...] = ("/bin/sh",)
    tty: bool = False
    hostname: str | None = None
    memory: int | None = None
    cpus: str | None = None
    rt_priority: int | None = None
    rt_runtime: int | None = None  # cpu.rt_runtime_us for the container (v1 RT group sched)
    share_ipc: bool = False
    volumes: tuple[Volume, ...] = ()
    cgroups_path: str | None = None
    rootless: bool = False
    # rootless: the holder's namespaces to join (user, mount) instead of new ones
    join_user_mnt: tuple[str, str] | None = None
    annotations: dict = attrs.field(factory=dict)


def build(o: UpOptions) -> dict:
    from pyruntime.spec.default import default_spec

    cfg = default_spec(o.rootless)
    proc = cfg["process"]
    proc["terminal"] = o.tty
    proc["args"] = list(o.args)
    cfg["root"] = {"path": "rootfs", "readonly": False}
    cfg["hostname"] = (o.hostname if o.hostname is not None else o.cid)[:64]
    linux = cfg["linux"]
    if o.cgroups_path:
        linux["cgroupsPath"] = o.cgroups_path
    res = linux.setdefault("resources", {}) if not o.rootless else {}
    if o.memory is not None:
        res.setdefault("memory", {})["limit"] = o.memory
    if o.cpus is not None:
        res.setdefault("cpu", {})["cpus"] = o.cpus
        proc["execCPUAffinity"] = {"initial": o.cpus, "final": o.cpus}
    if o.rt_priority is not None:
        proc["scheduler"] = {"policy": "SCHED_RR", "priority": o.rt_priority}
        if o.rt_runtime:
            res.setdefault("cpu", {})["realtimeRuntime"] = o.rt_runtime
    if res:
        linux["resources"] = res
    mounts = cfg["mounts"]
    if o.share_ipc:
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "ipc"]
        out = []
        for m in mounts:
            if m["destination"] == "/dev/shm":
                m = {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                     "options": ["rbind", "nosuid", "nodev", "noexec"]}
            elif m["destination"] == "/dev/mqueue":
                if os.path.isdir("/dev/mqueue"):
                    m = {"destination": "/dev/mqueue", "type": "bind", "source": "/dev/mqueue",
                         "options": ["rbind", "nosuid", "nodev", "noexec"]}
                elif o.rootless:
                    continue  # the host's mqueue instance cannot be mounted from a user namespace
            out.append(m)
        mounts[:] = out
    for v in o.volumes:
        mounts.append({"destination": v.destination, "type": "bind", "source": v.source,
                       "options": ["rbind", "rprivate"] + (["ro"] if v.readonly else [])})
    if o.join_user_mnt is not None:
        user, mnt = o.join_user_mnt
        linux.pop("uidMappings", None)
        linux.pop("gidMappings", None)
        ns = [n for n in linux["namespaces"] if n["type"] not in ("user", "mount")]
        linux["namespaces"] = [{"type": "user", "path": user}, {"type": "mount", "path": mnt}] + ns
    if o.annotations:
        cfg["annotations"] = dict(o.annotations)
    return cfg

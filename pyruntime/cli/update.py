"""pyruntime update [flags] ID  |  pyruntime update -r FILE|- ID

Writes to the cgroup only what the update names (as runc does: the files of the fields it does not
name are left as they are), and records the new values merged over the container's current
resources in its saved config."""

from pyruntime import jsonio
import sys

from pyruntime.cli._flags import Flag, one_id, parse
from pyruntime.errors import RuntimeFailure, UsageError

FLAGS = [
    Flag("resources,r", "str", "", help="path to a file containing the resources to update or '-' to read from the standard input"),
    Flag("blkio-weight", "str", None, help="Specifies per cgroup weight, range is from 10 to 1000"),
    Flag("cpu-period", "str", None, help="CPU CFS period to be used for hardcapping (in usecs). 0 to use system default"),
    Flag("cpu-quota", "str", None, help="CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"),
    Flag("cpu-burst", "str", None, help="CPU CFS hardcap burst limit (in usecs)"),
    Flag("cpu-share", "str", None, help="CPU shares (relative weight vs. other containers)"),
    Flag("cpu-rt-period", "str", None, help="CPU realtime period to be used for hardcapping (in usecs)"),
    Flag("cpu-rt-runtime", "str", None, help="CPU realtime hardcap limit (in usecs)"),
    Flag("cpuset-cpus", "str", None, help="CPU(s) to use"),
    Flag("cpuset-mems", "str", None, help="Memory node(s) to use"),
    Flag("cpu-idle", "str", None, help="set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE"),
    Flag("kernel-memory", "str", None, help="(obsoleted; do not use)"),
    Flag("kernel-memory-tcp", "str", None, help="(obsoleted; do not use)"),
    Flag("memory", "str", None, help="Memory limit (in bytes)"),
    Flag("memory-reservation", "str", None, help="Memory reservation or soft_limit (in bytes)"),
    Flag("memory-swap", "str", None, help="Total memory usage (memory + swap); set '-1' to enable unlimited swap"),
    Flag("pids-limit", "str", None, help="Maximum number of pids allowed in the container"),
    Flag("l3-cache-schema", "str", None, help="The string of Intel RDT/CAT L3 cache schema"),
    Flag("mem-bw-schema", "str", None, help="The string of Intel RDT/MBA memory bandwidth schema"),
    Flag("help,h"),
]

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3,
          "gb": 1024**3, "t": 1024**4, "tb": 1024**4, "p": 1024**5, "pb": 1024**5}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: '64m', '1g', '1024', '-1'."""
    import re

    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([kmgtp]?b?)\s*", text.lower())
    if not m:
        raise UsageError(f"invalid value {text!r}: invalid size")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _int(text: str, name: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise UsageError(f"invalid value {text!r} for flag --{name}") from None


def flag_resources(opts) -> dict:
    r: dict = {}
    def put(section, key, value):
        r.setdefault(section, {})[key] = value
    if opts.blkio_weight is not None:
        put("blockIO", "weight", _int(opts.blkio_weight, "blkio-weight"))
    for flag, key in (("cpu_period", "period"), ("cpu_quota", "quota"), ("cpu_burst", "burst"),
                      ("cpu_share", "shares"), ("cpu_rt_period", "realtimePeriod"),
                      ("cpu_rt_runtime", "realtimeRuntime"), ("cpu_idle", "idle")):
        v = opts[flag]
        if v is not None:
            put("cpu", key, _int(v, flag.replace("_", "-")))
    if opts.cpuset_cpus is not None:
        put("cpu", "cpus", opts.cpuset_cpus)
    if opts.cpuset_mems is not None:
        put("cpu", "mems", opts.cpuset_mems)
    for flag, key in (("memory", "limit"), ("memory_reservation", "reservation"),
                      ("memory_swap", "swap"), ("kernel_memory", "kernel"),
                      ("kernel_memory_tcp", "kernelTCP")):
        v = opts[flag]
        if v is not None:
            put("memory", key, -1 if v.strip() == "-1" else ram_in_bytes(v))
    if opts.pids_limit is not None:
        put("pids", "limit", _int(opts.pids_limit, "pids-limit"))
    if opts.l3_cache_schema is not None or opts.mem_bw_schema is not None:
        raise RuntimeFailure("Intel RDT is not supported by pyruntime on this host")
    return r


def merge(base: dict, new: dict) -> dict:
    out = jsonio.loads(jsonio.dumps(base or {}))
    for section, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(section), dict):
            out[section].update(value)
        else:
            out[section] = value
    return out


def to_apply(old: dict, new: dict, version: str) -> dict:
    """What `update` writes to the cgroup: the update's own fields (runc writes only those; an
    unnamed field is 0 = "leave alone" there), without device rules (update never changes them).
    Re-writing the recorded fields could fail where the update itself is fine (cpu.shares is
    refused once cpu.idle is 1; checkBeforeUpdate would re-check an unchanged memory limit).
    Partners a value cannot be written without are taken from the recorded config:
    cpu quota/period (runc: "leave the unset one at the old value"), and on cgroup v2 the memory
    limit that memory.swap.max (swap - limit) is computed from."""
    out = jsonio.loads(jsonio.dumps(new))
    out.pop("devices", None)
    cpu, old_cpu = out.get("cpu"), old.get("cpu") or {}
    if isinstance(cpu, dict):
        q, p = cpu.get("quota"), cpu.get("period")
        if q and not p and old_cpu.get("period"):
            cpu["period"] = old_cpu["period"]
        elif p and not q and old_cpu.get("quota"):
            cpu["quota"] = old_cpu["quota"]
    mem, old_mem = out.get("memory"), old.get("memory") or {}
    if version == "v2" and isinstance(mem, dict) and mem.get("swap") not in (None, 0, -1) \
            and not mem.get("limit") and old_mem.get("limit"):
        mem["limit"] = old_mem["limit"]
    return out


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="update")

    cid = one_id(rest, "update")
    if opts.resources:
        try:
            raw = sys.stdin.read() if opts.resources == "-" else open(opts.resources).read()
            new = jsonio.loads(raw)
        except OSError as e:
            raise RuntimeFailure(f"open {opts.resources}: {e.strerror.lower()}") from None
        except ValueError as e:
            raise RuntimeFailure(f"resources: invalid JSON: {e}") from None
        if not isinstance(new, dict):
            raise RuntimeFailure("resources: expected a JSON object")
    else:
        new = flag_resources(opts)
    from pyruntime.container.lifecycle import cgroup_of, load
    from pyruntime.spec import load_resources

    cdir, record, stat = load(ctx, cid)
    with cdir:
        if stat == "stopped":
            raise RuntimeFailure("container not running")
        config = record["config"]
        linux = config.setdefault("linux", {})
        merged = merge(linux.get("resources") or {}, new)
        # Device rules are not changed by update (runc keeps the container's): never record
        # rules that were not applied.
        if "devices" in (linux.get("resources") or {}):
            merged["devices"] = linux["resources"]["devices"]
        else:
            merged.pop("devices", None)
        load_resources(merged)  # the recorded whole must stay valid
        mgr = cgroup_of(record)
        if mgr is None:
            raise RuntimeFailure("cannot update resources of a container without cgroups")
        mgr.set(load_resources(to_apply(linux.get("resources") or {}, new, mgr.version)),
                skip_devices=True)
        linux["resources"] = merged
        cdir.write(record)
    return 0
